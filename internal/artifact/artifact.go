// Package artifact keeps export artifacts as files under one directory.
// An artifact becomes visible only when completely written and synced: a
// failed or interrupted export never leaves a half-written file behind a
// name. Every file is reached through an os.Root: a symbolic link planted
// in the directory cannot lead a read or a write out of it.
package artifact

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/runproof/runproof/internal/atomicfile"
	"github.com/runproof/runproof/internal/runproof"
)

// Dir stores artifacts as files under a root directory.
type Dir struct {
	root *os.Root
}

// NewDir returns a store rooted at dir, creating it (0700) if needed.
func NewDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("artifacts: %w", err)
	}
	return &Dir{root: root}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// path checks a key ("tenant/export.zip"), refusing keys that would leave
// the root.
func (d *Dir) path(key string) (string, error) {
	if key == "" || strings.Contains(key, "..") || path.Clean("/"+key) != "/"+key {
		return "", fmt.Errorf("artifacts: invalid key %q", key)
	}
	return key, nil
}

// Pending is an artifact being written. Nothing is visible under its key
// until Commit succeeds; Abort discards it.
type Pending interface {
	io.Writer
	Commit() error
	Abort()
}

// file is a Pending artifact in a temporary file next to its final name.
type file struct{ *atomicfile.File }

// Create starts writing the artifact under key.
func (d *Dir) Create(key string) (Pending, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	if err := d.root.MkdirAll(path.Dir(p), 0o700); err != nil {
		return nil, writeError(err)
	}
	f, err := atomicfile.CreateIn(d.root, p, 0o600)
	if err != nil {
		return nil, writeError(err)
	}
	return file{f}, nil
}

func (w file) Write(b []byte) (int, error) {
	n, err := w.File.Write(b)
	if err != nil {
		err = writeError(err)
	}
	return n, err
}

// Commit syncs the file and makes it visible under its key, durably.
func (w file) Commit() error {
	if err := w.File.Commit(); err != nil {
		return writeError(err)
	}
	return nil
}

// writeError is an error writing the directory. When its file system
// refuses the write (read-only, permissions, quota), the error says so in
// words, as the reason an export failed, rather than as an internal error;
// a full disk the caller tells apart already.
func writeError(err error) error {
	for _, refused := range []syscall.Errno{syscall.EROFS, syscall.EACCES, syscall.EPERM, syscall.EDQUOT} {
		if errors.Is(err, refused) {
			return runproof.Errorf(runproof.EUNAVAILABLE, "the server cannot write to its artifacts directory (%v): "+
				"exports fail until its file system or permissions are put right", refused)
		}
	}
	return fmt.Errorf("artifacts: %w", err)
}

// Open returns the artifact stored under key.
func (d *Dir) Open(key string) (io.ReadSeekCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := d.root.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, runproof.Errorf(runproof.ENOTFOUND, "the artifact of this export is not in the artifact store: it was removed, or made by a server with another data directory "+
			"(servers on one database share their exports' files only through one artifacts directory, DIR/artifacts)")
	}
	return f, err
}

// Remove deletes the artifact stored under key, if there is one.
func (d *Dir) Remove(key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := d.root.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// Sweep deletes the temporary files of artifacts under prefix (a tenant's
// directory) last written before a time: what a process stopped in the
// middle of writing left behind. It returns how many it deleted.
func (d *Dir) Sweep(prefix string, before time.Time) (int, error) {
	dir, err := d.path(prefix)
	if err != nil {
		return 0, err
	}
	temps, err := fs.Glob(d.root.FS(), path.Join(dir, atomicfile.TempPrefix+"*"))
	if err != nil {
		return 0, fmt.Errorf("artifacts: %w", err)
	}
	n := 0
	for _, t := range temps {
		fi, err := d.root.Lstat(t)
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(before) {
			continue
		}
		if err := d.root.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			return n, fmt.Errorf("artifacts: %w", err)
		}
		n++
	}
	return n, nil
}
