package store

import "errors"

// Sentinel errors. Errors returned by the store wrap one of these with the object named, e.g.
// fmt.Errorf("profile %q: %w", name, ErrNotFound); test them with errors.Is.
var (
	// ErrNotLeader means this node is not the leader: writes and linearizable reads must go to
	// the leader (see LeaderAPIAddress).
	ErrNotLeader = errors.New("not the leader")
	// ErrNotFound means the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means an object of that name exists already.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means the expected revision or generation does not match the stored one.
	ErrConflict = errors.New("conflict")
	// ErrInUse means the object is still referenced, e.g. a profile pinned by an active
	// (non-terminal) rollout.
	ErrInUse = errors.New("in use")
	// ErrFailedPrecondition means the object is not in a state that allows the command, e.g.
	// a join token that was already used, was revoked or has expired.
	ErrFailedPrecondition = errors.New("failed precondition")
	// ErrUnauthenticated means the credentials the command carries do not match the stored
	// ones, e.g. a join token's secret. It says nothing about the object's state.
	ErrUnauthenticated = errors.New("credentials not accepted")
	// ErrInvalid means the command is malformed (an empty name, a missing body). The API layer
	// validates first; this is the store's last line of defense, decided the same way on
	// every replica.
	ErrInvalid = errors.New("invalid command")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("store closed")
	// ErrOutcomeUnknown means the command was proposed but the leader lost its leadership
	// before it learnt whether the entry committed: it may have been applied, or not. Running
	// it again (on the new leader) could apply it twice; read the state before retrying.
	ErrOutcomeUnknown = errors.New("outcome unknown")
)
