package artifact

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/atomicfile"
	"github.com/runproof/runproof/internal/runproof"
)

func TestCommitAndAbort(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	w, err := d.Create("acme/e1.json")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, `{"a":1}`)
	if _, err := d.Open("acme/e1.json"); runproof.ErrorCode(err) != runproof.ENOTFOUND {
		t.Fatalf("visible before commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := d.Open("acme/e1.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != `{"a":1}` {
		t.Fatalf("read %q", b)
	}

	w2, _ := d.Create("acme/e2.json")
	io.WriteString(w2, "half")
	w2.Abort()
	entries, _ := os.ReadDir(filepath.Join(root, "acme"))
	if len(entries) != 1 {
		t.Fatalf("abort left files: %v", entries)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "a/../../b", ""} {
		if _, err := d.Create(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestRemoveAndSweep(t *testing.T) {
	root := t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := d.Create("acme/e1.json")
	io.WriteString(w, "{}")
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	temps := func() []string {
		names, _ := filepath.Glob(filepath.Join(root, "acme", atomicfile.TempPrefix+"*"))
		return names
	}
	stale, _ := d.Create("acme/e2.json") // a process stopped while writing it
	io.WriteString(stale, "half")
	staleName := temps()[0]
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(staleName, old, old); err != nil {
		t.Fatal(err)
	}
	fresh, _ := d.Create("acme/e3.json") // still being written
	defer fresh.Abort()

	if n, err := d.Sweep("acme", time.Now().Add(-time.Hour)); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want the stale temporary file", n, err)
	}
	if _, err := os.Stat(staleName); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there: %v", err)
	}
	if left := temps(); len(left) != 1 {
		t.Errorf("temporary files left: %v, want the fresh one", left)
	}
	if n, err := d.Sweep("nobody", time.Now()); err != nil || n != 0 {
		t.Errorf("sweep of a tenant without artifacts: %d, %v", n, err)
	}
	if err := d.Remove("acme/e1.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open("acme/e1.json"); runproof.ErrorCode(err) != runproof.ENOTFOUND {
		t.Errorf("removed artifact opens: %v", err)
	}
	if err := d.Remove("acme/e1.json"); err != nil {
		t.Errorf("removing it twice: %v", err)
	}
}

// TestSymlinkOut: a symbolic link planted in the directory, to a tenant's
// folder or to one artifact, leads neither a write nor a read out of it.
func TestSymlinkOut(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "acme")); err != nil {
		t.Fatal(err)
	}
	if w, err := d.Create("acme/e1.json"); err == nil {
		w.Abort()
		t.Error("an artifact was written through a link out of the directory")
	}
	if r, err := d.Open("acme/secret"); err == nil {
		r.Close()
		t.Error("a file out of the directory was read through a link")
	}
	if err := os.Mkdir(filepath.Join(root, "globex"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "globex", "e2.zip")); err != nil {
		t.Fatal(err)
	}
	if r, err := d.Open("globex/e2.zip"); err == nil {
		r.Close()
		t.Error("a file out of the directory was read through a link")
	}
	if err := d.Remove("globex/e2.zip"); err != nil {
		t.Errorf("removing the link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret")); err != nil {
		t.Errorf("the file the link led to: %v", err)
	}
}

// TestWriteRefused: a file system that refuses writes (read-only, say)
// fails an artifact with that reason, in words; other errors stay as
// they are.
func TestWriteRefused(t *testing.T) {
	err := writeError(&fs.PathError{Op: "open", Path: "acme/.tmp-x", Err: syscall.EROFS})
	if runproof.ErrorCode(err) != runproof.EUNAVAILABLE || !strings.Contains(err.Error(), "cannot write to its artifacts directory (read-only file system)") {
		t.Errorf("read-only: %v", err)
	}
	if err := writeError(&fs.PathError{Op: "write", Path: "acme/.tmp-x", Err: syscall.EIO}); !errors.Is(err, syscall.EIO) || runproof.ErrorCode(err) != runproof.EINTERNAL {
		t.Errorf("an I/O error: %v", err)
	}
}
