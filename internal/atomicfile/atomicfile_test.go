package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/runproof/runproof/internal/atomicfile"
)

// TestWrite: a write lands whole with its mode; a failed one leaves the
// file as it was and no temporary file behind.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := atomicfile.Write(name, 0o640, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("disk full")
	err := atomicfile.Write(name, 0o640, func(w io.Writer) error {
		io.WriteString(w, "tw")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("failed write: %v", err)
	}
	b, err := os.ReadFile(name)
	fi, _ := os.Stat(name)
	if err != nil || string(b) != "one" || fi.Mode().Perm() != 0o640 {
		t.Errorf("file after a failed write: %q, %v, mode %v", b, err, fi.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, atomicfile.TempPrefix+"*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestWriteUmask: the mode asked for is reduced by the umask, as for any
// file created: a user's umask 077 keeps what is written private.
func TestWriteUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	name := filepath.Join(t.TempDir(), "f")
	if err := atomicfile.Write(name, 0o644, func(w io.Writer) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, %v; want 0600 under umask 077", fi.Mode(), err)
	}
}
