// Package atomicfile writes files whole or not at all.
package atomicfile

import (
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the names of the temporary files Write leaves behind
// when the process is killed mid-write; readers of a directory skip them.
const TempPrefix = ".tmp-"

// Write writes a file with mode perm (less the process's umask, as for any
// file created) through a temporary file in the same directory, synced,
// then renamed over name, the rename made durable: a failure or a crash
// never leaves a partial file under name.
func Write(name string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := Create(name, perm)
	if err != nil {
		return err
	}
	defer f.Abort() // a no-op once committed
	if err := write(f); err != nil {
		return err
	}
	return f.Commit()
}

// A File is a file being written in a temporary file next to its name:
// nothing shows under its name until Commit succeeds; Abort discards it.
type File struct {
	f    *os.File
	name string
	done bool
}

// Create starts writing a file that Commit gives name. The temporary file
// is created with mode perm, which the umask reduces as it does any other
// file's.
func Create(name string, perm os.FileMode) (*File, error) {
	for {
		temp := filepath.Join(filepath.Dir(name), TempPrefix+rand.Text())
		f, err := os.OpenFile(temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue // taken: as likely as guessing a 128-bit key
		}
		if err != nil {
			return nil, err
		}
		return &File{f: f, name: name}, nil
	}
}

func (w *File) Write(b []byte) (int, error) { return w.f.Write(b) }

// Chmod gives the file mode perm exactly, whatever the umask: that of a
// file it replaces, say.
func (w *File) Chmod(perm os.FileMode) error { return w.f.Chmod(perm) }

// Commit syncs the file and renames it over its name, the rename made
// durable. A failure leaves nothing behind.
func (w *File) Commit() error {
	if w.done {
		return errors.New("committed or aborted already")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.name)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return err
	}
	return SyncDir(filepath.Dir(w.name))
}

// Abort discards what was written. It is a no-op after Commit.
func (w *File) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// SyncDir makes a rename in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
