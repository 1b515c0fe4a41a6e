package atomicfile_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
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
