// Package atomicfile writes files whole or not at all.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// TempPrefix starts the names of the temporary files Write leaves behind
// when the process is killed mid-write; readers of a directory skip them.
const TempPrefix = ".tmp-"

// Write writes a file with mode perm through a temporary file in the same
// directory, synced, then renamed over name, the rename made durable: a
// failure or a crash never leaves a partial file under name.
func Write(name string, perm os.FileMode, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(name), TempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), perm)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err == nil {
		err = SyncDir(filepath.Dir(name))
	}
	return err
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
