// Package artifact keeps export artifacts as files under one directory.
// An artifact becomes visible only when completely written and synced: a
// failed or interrupted export never leaves a half-written file behind a
// name.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// Dir stores artifacts as files under a root directory.
type Dir struct {
	root string
}

// NewDir returns a store rooted at root, creating it (0700) if needed.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	return &Dir{root: root}, nil
}

// path maps a key ("tenant/export.zip") to a file, refusing keys that
// would leave the root.
func (d *Dir) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if key == "" || strings.Contains(key, "..") || clean != "/"+key {
		return "", fmt.Errorf("artifacts: invalid key %q", key)
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Writer writes one artifact, hashing it on the way. Nothing is visible
// under its key until Commit succeeds.
type Writer struct {
	f     *os.File
	final string
	hash  hash.Hash
	n     int64
	done  bool
}

// Create starts writing the artifact under key.
func (d *Dir) Create(key string) (*Writer, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	return &Writer{f: f, final: p, hash: sha256.New()}, nil
}

func (w *Writer) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.hash.Write(b[:n])
	w.n += int64(n)
	return n, err
}

// Digest is the sha256 of what was written so far, as runproof writes digests.
func (w *Writer) Digest() string {
	return runproof.DigestPrefix + hex.EncodeToString(w.hash.Sum(nil))
}

// Size is the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Commit syncs the file and makes it visible under its key.
func (w *Writer) Commit() error {
	if w.done {
		return errors.New("artifacts: already closed")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.final)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// Abort discards what was written. It is safe after Commit (a no-op).
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// Open returns the artifact stored under key.
func (d *Dir) Open(key string) (io.ReadSeekCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, runproof.Errorf(runproof.ENOTFOUND, "the artifact of this export is missing from the artifact store")
	}
	return f, err
}
