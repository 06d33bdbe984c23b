package agent

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebbflow/ebbflow/internal/durable"
)

// Files of an identity directory.
const (
	// KeyFile is the agent's private key (PKCS#8 PEM, mode 0600).
	KeyFile = "tls.key"
	// CertFile is the agent's client certificate, with any chain the controller sent.
	CertFile = "tls.crt"
	// CAFile holds the CA certificates the agent trusts the controllers with.
	CAFile = "ca.crt"
	// pendingFile is the journal of an identity being stored: key, certificate and CA in one
	// file, renamed into place before the three files are replaced, removed after. Whatever a
	// crash interrupts, the next load finds either the old files or a complete journal to finish.
	pendingFile = "pending.pem"
	// fileHeader names, in the journal, the file each PEM block belongs to.
	fileHeader = "File"
)

// ErrNoIdentity means no identity is stored: the agent must join with a join token.
var ErrNoIdentity = errors.New("no agent identity stored")

// DiscardedError reports a stored identity that LoadIdentity could not use (a key that does
// not match its certificate, a missing or unreadable file): it moved the files aside, with the
// suffix ".discarded", and the agent must join again. It matches ErrNoIdentity.
type DiscardedError struct {
	Dir    string
	Reason string
}

func (e *DiscardedError) Error() string {
	return fmt.Sprintf("discarded the identity stored in %s: %s", e.Dir, e.Reason)
}

// Is makes errors.Is(err, ErrNoIdentity) hold.
func (e *DiscardedError) Is(target error) bool { return target == ErrNoIdentity }

// LoadIdentity loads the identity stored in dir. It returns ErrNoIdentity when there is none,
// and a *DiscardedError (which matches ErrNoIdentity) when the stored one was unusable. It
// finishes a store a crash interrupted, and removes temporary files one left behind. An
// expired certificate is loaded all the same: see NotAfter.
func LoadIdentity(dir string) (*Identity, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoIdentity
	} else if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if err := removeTemps(dir); err != nil {
		return nil, err
	}
	if err := finishPending(dir); err != nil {
		return nil, err
	}
	var m material
	var missing, present []string
	for _, f := range []struct {
		name string
		data *[]byte
	}{{KeyFile, &m.key}, {CertFile, &m.cert}, {CAFile, &m.ca}} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, f.name)
		case err != nil:
			return nil, fmt.Errorf("identity: %w", err)
		default:
			*f.data = b
			present = append(present, f.name)
		}
	}
	if len(present) == 0 {
		return nil, ErrNoIdentity
	}
	if len(missing) > 0 {
		return nil, discard(dir, present, strings.Join(missing, " and ")+" missing")
	}
	c, err := parseMaterial(m, time.Time{})
	if err != nil {
		return nil, discard(dir, present, err.Error())
	}
	return &Identity{dir: dir, cur: c, caPEM: m.ca}, nil
}

// store writes m into dir so that a crash at any point leaves either the old identity or the
// new one: first the journal, atomically, then each file, atomically, then the journal goes.
func store(dir string, m material) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	var j bytes.Buffer
	for _, f := range m.files() {
		for rest := f.data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			_ = pem.Encode(&j, &pem.Block{Type: b.Type, Headers: map[string]string{fileHeader: f.name}, Bytes: b.Bytes})
		}
	}
	if err := writeAtomic(dir, pendingFile, j.Bytes(), 0o600); err != nil {
		return err
	}
	return install(dir, m)
}

// install replaces the three files with m's and removes the journal.
func install(dir string, m material) error {
	for _, f := range m.files() {
		if err := writeAtomic(dir, f.name, f.data, f.perm); err != nil {
			return err
		}
	}
	if err := os.Remove(filepath.Join(dir, pendingFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("identity: %w", err)
	}
	return syncDir(dir)
}

type file struct {
	name string
	data []byte
	perm os.FileMode
}

func (m material) files() []file {
	return []file{{KeyFile, m.key, 0o600}, {CertFile, m.cert, 0o644}, {CAFile, m.ca, 0o644}}
}

// finishPending completes a store that a crash interrupted after its journal was written. A
// journal that does not hold a usable identity is dropped (the files were not touched yet).
func finishPending(dir string) error {
	path := filepath.Join(dir, pendingFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	parts := map[string]*bytes.Buffer{KeyFile: {}, CertFile: {}, CAFile: {}}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if w := parts[b.Headers[fileHeader]]; w != nil {
			_ = pem.Encode(w, &pem.Block{Type: b.Type, Bytes: b.Bytes})
		}
	}
	m := material{key: parts[KeyFile].Bytes(), cert: parts[CertFile].Bytes(), ca: parts[CAFile].Bytes()}
	if _, err := parseMaterial(m, time.Time{}); err != nil {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("identity: %w", err)
		}
		return syncDir(dir)
	}
	return install(dir, m)
}

// discard moves the named files of dir aside and reports why.
func discard(dir string, names []string, reason string) error {
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.Rename(p, p+".discarded"); err != nil {
			return fmt.Errorf("identity: %s (and moving it aside failed: %w)", reason, err)
		}
	}
	_ = syncDir(dir)
	return &DiscardedError{Dir: dir, Reason: reason}
}

// removeTemps deletes the temporary files an interrupted writeAtomic left in dir.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-") {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("identity: %w", err)
			}
		}
	}
	return nil
}

// writeAtomic writes dir/name through a temporary file in dir, synced, then renamed, so the
// file never holds part of data.
func writeAtomic(dir, name string, data []byte, perm os.FileMode) error {
	if err := durable.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}

// syncDir makes renames and removals in dir durable.
func syncDir(dir string) error {
	if err := durable.SyncDir(dir); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	return nil
}
