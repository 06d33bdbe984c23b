// Package store owns the controller's replicated state: hashicorp/raft with its log and
// stable store on raft-wal (each entry CRC-checked), snapshots on disk, and the FSM's state in
// bbolt (committed without fsync; it is derived from the log and checked on open).
//
// Writes are proto commands (storev1.Command) proposed on the leader with Apply or
// ApplyBatch; the FSM applies them deterministically on every node. Reads run in a read-only
// transaction at a ReadLevel with View. Subscribe reports what changed; WatchCluster wakes one
// watcher when one cluster's assignment may have changed. Every node keeps an in-memory index
// of the active rollouts and the registry's cordons (index.go), maintained as entries apply,
// for the look-ups every agent call makes. A rollout is stored as a header, one record per
// cluster and its measurements apart (rollouts.go), and changed by PatchRollout commands that
// carry only what a decision changed.
//
// Files under Config.DataDir:
//
//	wal/        Raft log and stable store (raft-wal: segment files and wal-meta.db); a
//	            raft.db of an earlier version is moved into it on start (logstore.go)
//	snapshots/  Raft snapshots (the two newest are kept)
//	fsm.db      the state the FSM applied, with the last applied index
package store

// This file is just over 500 lines: the Store's life (open, bootstrap, recovery, Raft timing,
// proposals, close); the FSM, reads, membership and snapshots each have a file of their own.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	storev1 "github.com/ebbflow/ebbflow/proto/ebbflow/store/v1"
)

// Defaults of Config.
const (
	DefaultApplyTimeout      = 10 * time.Second
	DefaultSnapshotThreshold = 8192
	DefaultSnapshotInterval  = 2 * time.Minute
	DefaultTrailingLogs      = 10240
	// The Raft timings are hashicorp/raft's and etcd's 1 s, not the 400 ms that `make
	// bench-raft`'s failover mode favours (first write after a leader kill at p99 1.15 s with
	// 400 ms, 2.7 s with 1 s): with 400 ms, a 10,000-cluster wave on a loaded 2-core machine
	// (thousands of goroutine waits over 117 ms, as under a CPU limit's throttling) made the
	// leader step down and the group hold elections for seconds in the middle of the wave
	// (e2e/fleetsim: 2 to 11 elections a run; with 1 s, none). A follower starts an election
	// after 1-2 s without the leader; a leader steps down when it has not heard from a quorum
	// for the lease. Dedicated, lightly loaded nodes may lower all three with the flags.
	DefaultHeartbeatTimeout   = time.Second
	DefaultElectionTimeout    = time.Second
	DefaultLeaderLeaseTimeout = time.Second
	// DefaultCommitTimeout is how long an idle leader waits before it tells followers the
	// commit index (raft's default 50 ms): what a stale read on a follower may lag behind.
	DefaultCommitTimeout = 50 * time.Millisecond
)

// Config configures a Store.
type Config struct {
	// NodeID identifies this node in the Raft configuration; it must not change.
	NodeID string
	// DataDir holds wal/, snapshots/ and fsm.db; created if missing.
	DataDir string
	// RaftBind is the host:port the Raft TCP transport listens on; port 0 picks a free port
	// (RaftAddress reports it). Default 127.0.0.1:0.
	RaftBind string
	// RaftAdvertise is the address other nodes dial; default the bound address. A DNS name
	// (host:port) is kept as the node's Raft address and resolved at each dial.
	RaftAdvertise string
	// RaftTLS, when set, carries Raft over mutual TLS: it is both the server and the client
	// configuration of every Raft connection (certificate, CA, peer checks).
	RaftTLS *tls.Config
	// APIAddress is this node's API host:port. The node records it through Raft when it
	// becomes leader, so every node can find the leader's API.
	APIAddress string
	// Bootstrap makes this node a single-voter cluster if there is no Raft state yet.
	Bootstrap bool
	// Logger receives the store's and Raft's logs; default slog.Default().
	Logger *slog.Logger

	// ApplyTimeout bounds a proposal when the context has no earlier deadline.
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many new log entries trigger a snapshot.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks SnapshotThreshold.
	SnapshotInterval time.Duration
	// TrailingLogs is how many entries a snapshot leaves in the log, so slightly lagging
	// followers catch up from the log rather than a whole snapshot.
	TrailingLogs uint64

	// Raft timing, for a LAN by default (the Default* constants). Fast is for tests on a
	// loaded machine: 500 ms timeouts, a little slower to fail over than the defaults and
	// less likely to call an election during a long pause, and a 10 ms commit timeout;
	// explicit fields still win.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	Fast               bool
	// NoLeaderLossElection turns off the election a follower starts as soon as its leader's
	// process is gone (leaderloss.go), leaving Raft's heartbeat timeout as the only way.
	NoLeaderLossElection bool

	// logStore is LogStoreWAL (the default: measured faster, BenchmarkApplyThreeNodes) or
	// LogStoreBolt (earlier versions' raft.db, kept to measure against).
	logStore string
	// fsmSync makes every FSM commit fsync fsm.db (the behaviour before the state became
	// derived-only; kept to measure against).
	fsmSync bool
}

func (c *Config) setDefaults() {
	if c.RaftBind == "" {
		c.RaftBind = "127.0.0.1:0"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.logStore == "" {
		c.logStore = LogStoreWAL
	}
	if c.ApplyTimeout <= 0 {
		c.ApplyTimeout = DefaultApplyTimeout
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.SnapshotInterval <= 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	hb, el, lease, commit := DefaultHeartbeatTimeout, DefaultElectionTimeout, DefaultLeaderLeaseTimeout, DefaultCommitTimeout
	if c.Fast {
		hb, el, lease, commit = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond, 10*time.Millisecond
	}
	if c.CommitTimeout <= 0 {
		c.CommitTimeout = commit
	}
	if c.HeartbeatTimeout <= 0 {
		c.HeartbeatTimeout = hb
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = el
	}
	if c.LeaderLeaseTimeout <= 0 {
		c.LeaderLeaseTimeout = min(lease, c.HeartbeatTimeout)
	}
}

// CheckRaftTimeouts checks Raft's timing the way the fleet-controller flags name it: each at
// least 10ms, the election timeout at least the heartbeat timeout, the leader lease at most it,
// the commit timeout between 1ms and the heartbeat timeout.
func CheckRaftTimeouts(heartbeat, election, lease, commit time.Duration) error {
	const floor = 10 * time.Millisecond
	switch {
	case heartbeat < floor || election < floor || lease < floor:
		return fmt.Errorf("--raft-heartbeat-timeout (%s), --raft-election-timeout (%s) and --raft-leader-lease-timeout (%s) must each be at least %s", heartbeat, election, lease, floor)
	case election < heartbeat:
		return fmt.Errorf("--raft-election-timeout (%s) must be at least --raft-heartbeat-timeout (%s)", election, heartbeat)
	case lease > heartbeat:
		return fmt.Errorf("--raft-leader-lease-timeout (%s) must be at most --raft-heartbeat-timeout (%s)", lease, heartbeat)
	case commit < time.Millisecond || commit > heartbeat:
		return fmt.Errorf("--raft-commit-timeout (%s) must be between 1ms and --raft-heartbeat-timeout (%s)", commit, heartbeat)
	}
	return nil
}

// Store is one node of the replicated state.
type Store struct {
	cfg      Config
	log      *slog.Logger
	raft     *raft.Raft
	trans    *raft.NetworkTransport
	stream   *stream // trans's connections (leaderloss.go)
	logStore *logStore
	logs     raft.LogStore // logStore's, behind a cache of recent entries
	fsm      *fsm
	hub      *hub
	now      func() time.Time

	lead leadership
	// leaderSeen.changed is closed when the leader this node sees changes (observeLeader).
	leaderSeen struct {
		mu      sync.Mutex
		changed chan struct{}
	}

	proposedMu sync.Mutex
	proposed   map[string]ProposalStats

	bg        sync.WaitGroup // background goroutines, stopped by Close
	stop      chan struct{}  // closed once Raft is shut down
	done      chan struct{}  // closed when Close is complete
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the node's data under cfg.DataDir and starts Raft.
func Open(cfg Config) (_ *Store, err error) {
	cfg.setDefaults()
	if cfg.NodeID == "" {
		return nil, errors.New("store: NodeID is required")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("store: DataDir is required")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	log := cfg.Logger
	hlog := newHCLogger(log.With("component", "raft"))

	var closers []func() error
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				_ = closers[i]()
			}
		}
	}()

	s := &Store{cfg: cfg, log: log, hub: newHub(), now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	s.lead.changed = make(chan struct{})
	s.leaderSeen.changed = make(chan struct{})
	if err := prepareState(filepath.Join(cfg.DataDir, "fsm.db"), log, time.Now()); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.fsm, err = openFSM(filepath.Join(cfg.DataDir, "fsm.db"), log, cfg.fsmSync, s.hub.publish, s.hub.wake)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	closers = append(closers, s.fsm.close)

	s.logStore, err = openLogStore(cfg.logStore, cfg.DataDir, hlog)
	if dl := (*DamagedLogError)(nil); errors.As(err, &dl) {
		return nil, err
	} else if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	closers = append(closers, s.logStore.close)
	if err := checkLog(s.logStore); err != nil {
		return nil, &DamagedLogError{Path: s.logStore.path, Err: err}
	}
	if err := s.logStore.checkClose(); err != nil {
		return nil, &DamagedLogError{Path: s.logStore.path, Err: err}
	}
	if s.logs, err = raft.NewLogCache(512, s.logStore.logs); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot store: %w", err)
	}

	s.trans, s.stream, err = newTransport(cfg.RaftBind, cfg.RaftAdvertise, cfg.RaftTLS, hlog)
	if err != nil {
		return nil, fmt.Errorf("store: raft transport on %s: %w", cfg.RaftBind, err)
	}
	closers = append(closers, s.trans.Close)

	hasState, err := raft.HasExistingState(s.logs, s.logStore.stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	applied, _ := s.fsm.appliedState()
	if !hasState && applied > 0 {
		return nil, fmt.Errorf("store: %s holds state applied up to index %d but there is no Raft state beside it; refusing to start", s.fsm.path, applied)
	}
	restore, err := needsRestore(applied, snaps, s.logs)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	notify := make(chan bool, 8)
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.Logger = hlog
	rc.NotifyCh = notify
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	// Raft's most: one append (one fsync on each node) carries up to this many entries when
	// many writers wait, where the default (64) splits a burst into several.
	rc.MaxAppendEntries = 1024
	// fsm.db already holds the state; restore a snapshot only when it is behind one.
	rc.NoSnapshotRestoreOnStart = !restore

	if cfg.Bootstrap && !hasState {
		err := raft.BootstrapCluster(rc, s.logs, s.logStore.stable, snaps, s.trans, raft.Configuration{Servers: []raft.Server{
			{Suffrage: raft.Voter, ID: rc.LocalID, Address: s.trans.LocalAddr()},
		}})
		if err != nil {
			return nil, fmt.Errorf("store: bootstrap: %w", err)
		}
	}
	s.raft, err = raft.NewRaft(rc, s.fsm, s.logs, s.logStore.stable, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("store: start raft: %w", err)
	}
	s.bg.Go(func() { s.followLeadership(notify) })
	s.bg.Go(s.syncState)
	s.bg.Go(s.observeLeader)
	s.bg.Go(s.watchLeaderLoss)
	s.bg.Go(s.watchStaleCandidates)
	log.Info("store open", "node", cfg.NodeID, "raft", s.RaftAddress(), "data", cfg.DataDir,
		"applied", applied, "restore_snapshot", restore)
	return s, nil
}

// stateSyncInterval is how often fsm.db is synced when entries have applied: what a power
// cut can make a restart replay.
const stateSyncInterval = time.Second

// syncState syncs fsm.db every stateSyncInterval until the store closes (Close syncs it
// last).
func (s *Store) syncState() {
	t := time.NewTicker(stateSyncInterval)
	defer t.Stop()
	var synced uint64
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.fsm.syncTo(synced)
			if err != nil && !errors.Is(err, ErrClosed) {
				s.log.Error("syncing the state database", "file", s.fsm.path, "err", err)
			}
			synced = n
		}
	}
}

// needsRestore reports whether the state in fsm.db is behind the newest snapshot, so Raft
// must restore it on start. Entries the FSM never sees (no-ops, barriers, configuration)
// leave the state as it is; a command in between, or one already compacted away, does not.
func needsRestore(applied uint64, snaps raft.SnapshotStore, logs raft.LogStore) (bool, error) {
	list, err := snaps.List()
	if err != nil {
		return false, err
	}
	if len(list) == 0 || list[0].Index <= applied {
		return false, nil
	}
	for i := applied + 1; i <= list[0].Index; i++ {
		var l raft.Log
		if err := logs.GetLog(i, &l); err != nil || l.Type == raft.LogCommand {
			return true, nil //nolint:nilerr // an unreadable entry may be a command: replay, to be safe
		}
	}
	return false, nil
}

// Close shuts Raft down, ends subscriptions and closes the databases. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		close(s.stop)
		s.bg.Wait()
		s.setLeadership(false)
		s.hub.close()
		if err := s.logStore.recordClose(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.logStore.path, err))
		}
		if err := s.logStore.close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.logStore.path, err))
		}
		if err := s.fsm.close(); err != nil {
			errs = append(errs, fmt.Errorf("close fsm.db: %w", err))
		}
		s.closeErr = errors.Join(errs...)
		close(s.done)
	})
	return s.closeErr
}

func (s *Store) closed() bool {
	select {
	case <-s.stop:
		return true
	default:
		return s.raft.State() == raft.Shutdown
	}
}

// RaftAddress is the address other nodes reach this node's Raft transport on.
func (s *Store) RaftAddress() string {
	return string(s.trans.LocalAddr())
}

// Apply proposes one command and waits until this node has applied it. It returns the
// resulting object: *ebbflowv1.Profile for profile create and update, *ebbflowv1.Cluster
// for cluster commands, *ebbflowv1.Rollout for PutRollout, *ebbflowv1.JoinToken for
// CreateJoinToken and RevokeJoinToken, *storev1.ClusterIdentity for ConsumeJoinToken and
// RevokeClusterIdentity, nil otherwise. Errors the FSM decides (not found, conflict, ...)
// wrap the package's sentinels. A command without a time gets the leader's clock (cmd.Time
// is set). On a follower it returns ErrNotLeader.
//
// If ctx ends first the command may still be applied.
func (s *Store) Apply(ctx context.Context, cmd *storev1.Command) (proto.Message, error) {
	switch cmd.GetBody().(type) {
	case nil:
		return nil, fmt.Errorf("command without a body: %w", ErrInvalid)
	case *storev1.Command_Batch:
		return nil, fmt.Errorf("a batch goes through ApplyBatch: %w", ErrInvalid)
	}
	if cmd.Time == nil {
		cmd.Time = timestamppb.New(s.now())
	}
	resp, err := s.propose(ctx, cmd, 1)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*applyResult)
	if !ok {
		return nil, fmt.Errorf("store: unexpected result %T from the state machine", resp)
	}
	return r.msg, r.err
}

// ApplyBatch proposes cmds as one log entry, applied in order in one transaction. Each
// command has its own Result, in order; one failing does not stop the others. Commands
// without a time get the leader's clock. A nested Batch fails with ErrInvalid as its result.
func (s *Store) ApplyBatch(ctx context.Context, cmds []*storev1.Command) ([]Result, error) {
	if len(cmds) == 0 {
		return nil, nil
	}
	now := timestamppb.New(s.now())
	for i, c := range cmds {
		if c.GetBody() == nil {
			return nil, fmt.Errorf("batch command %d has no body: %w", i, ErrInvalid)
		}
		if c.Time == nil {
			c.Time = now
		}
	}
	resp, err := s.propose(ctx, &storev1.Command{
		Time: now,
		Body: &storev1.Command_Batch{Batch: &storev1.Batch{Commands: cmds}},
	}, len(cmds))
	if err != nil {
		return nil, err
	}
	rs, ok := resp.([]Result)
	if !ok || len(rs) != len(cmds) {
		return nil, fmt.Errorf("store: unexpected result %T from the state machine", resp)
	}
	return rs, nil
}

// ProposalStats counts what this node proposed to the log, by kind: log entries, the commands
// they carried (a batch carries several) and their encoded bytes.
type ProposalStats struct {
	Entries, Commands, Bytes uint64
}

type proposalKindKey struct{}

// WithProposalKind labels the proposals made with ctx for ProposedStats (e.g. "report");
// unlabelled proposals count under their command's kind ("batch" for a batch).
func WithProposalKind(ctx context.Context, kind string) context.Context {
	return context.WithValue(ctx, proposalKindKey{}, kind)
}

// ProposedStats returns the counts of proposals made on this node since it started, by kind.
func (s *Store) ProposedStats() map[string]ProposalStats {
	s.proposedMu.Lock()
	defer s.proposedMu.Unlock()
	out := make(map[string]ProposalStats, len(s.proposed))
	for k, v := range s.proposed {
		out[k] = v
	}
	return out
}

// propose appends cmd (holding commands commands) to the log and returns the FSM's response
// once applied here.
func (s *Store) propose(ctx context.Context, cmd *storev1.Command, commands int) (any, error) {
	if s.closed() {
		return nil, ErrClosed
	}
	if s.raft.State() != raft.Leader {
		return nil, ErrNotLeader
	}
	b, err := proto.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	kind, _ := ctx.Value(proposalKindKey{}).(string)
	if kind == "" {
		kind = "unknown"
		if f := cmd.ProtoReflect().WhichOneof(cmd.ProtoReflect().Descriptor().Oneofs().ByName("body")); f != nil {
			kind = string(f.Name())
		}
	}
	s.proposedMu.Lock()
	if s.proposed == nil {
		s.proposed = map[string]ProposalStats{}
	}
	st := s.proposed[kind]
	st.Entries++
	st.Commands += uint64(commands)
	st.Bytes += uint64(len(b))
	s.proposed[kind] = st
	s.proposedMu.Unlock()
	timeout, err := s.timeout(ctx)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(b, timeout)
	if err := s.wait(ctx, f); err != nil {
		return nil, err
	}
	return f.Response(), nil
}

// Snapshot makes Raft take a snapshot now (and compact its log).
func (s *Store) Snapshot() error {
	if s.closed() {
		return ErrClosed
	}
	err := s.raft.Snapshot().Error()
	if errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil
	}
	return raftErr(err)
}

// timeout is how long Raft may take to accept a proposal: ApplyTimeout, or less if ctx
// ends sooner.
func (s *Store) timeout(ctx context.Context) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	t := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		t = min(t, time.Until(dl))
		if t <= 0 {
			return 0, context.DeadlineExceeded
		}
	}
	return t, nil
}

// wait waits for a Raft future or ctx, mapping Raft's errors to the package's.
func (s *Store) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return raftErr(err)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftErr maps Raft's errors to the package's sentinels.
func raftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrLeadershipLost):
		// Proposed, then the leadership went: the entry may still commit under the next leader.
		// Not ErrNotLeader, which callers take as "not proposed" and send to the leader again.
		return fmt.Errorf("%w: leadership was lost while the write was committing, so it may or may not have been applied (read before retrying): %w", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrNotVoter):
		return fmt.Errorf("%w: %w", ErrNotLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrClosed
	default:
		return fmt.Errorf("raft: %w", err)
	}
}
