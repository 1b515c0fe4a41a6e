// Package atomicfile writes files whole or not at all.
package atomicfile

import (
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"unicode/utf8"
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
// Every step goes through one os.Root, so that a symbolic link planted on
// the way cannot lead the file out of its directory tree.
type File struct {
	f     *os.File
	root  *os.Root
	owned bool   // the root is the file's own, closed when it is done
	name  string // the file's name in root, slash-separated
	temp  string // the temporary file's name in root
	done  bool
}

// Create starts writing a file that Commit gives name. The temporary file
// is created with mode perm, which the umask reduces as it does any other
// file's.
func Create(name string, perm os.FileMode) (*File, error) {
	root, err := os.OpenRoot(filepath.Dir(name))
	if err != nil {
		return nil, err
	}
	f, err := CreateIn(root, filepath.Base(name), perm)
	if err != nil {
		root.Close()
		return nil, err
	}
	f.owned = true
	return f, nil
}

// CreateIn is Create for a file named, slash-separated, within root; its
// directory must exist.
func CreateIn(root *os.Root, name string, perm os.FileMode) (*File, error) {
	for {
		// The name it is for is in it, so that one a killed process left
		// behind says what it was (cut, to keep within a name's length),
		// but not at its end: a reader looking for "*.pem" must not take
		// it for a key.
		base := path.Base(name)
		for len(base) > 100 {
			_, size := utf8.DecodeLastRuneInString(base)
			base = base[:len(base)-size]
		}
		temp := path.Join(path.Dir(name), TempPrefix+base+"-"+rand.Text())
		f, err := root.OpenFile(temp, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue // taken: as likely as guessing a 128-bit key
		}
		if err != nil {
			return nil, err
		}
		return &File{f: f, root: root, name: name, temp: temp}, nil
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
	defer w.release()
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.root.Rename(w.temp, w.name)
	}
	if err != nil {
		w.root.Remove(w.temp)
		return err
	}
	d, err := w.root.Open(path.Dir(w.name))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Abort discards what was written. It is a no-op after Commit.
func (w *File) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	w.root.Remove(w.temp)
	w.release()
}

func (w *File) release() {
	if w.owned {
		w.root.Close()
	}
}
