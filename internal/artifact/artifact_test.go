package artifact

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

func TestCommitAndAbort(t *testing.T) {
	d, err := NewDir(t.TempDir())
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
	entries, _ := os.ReadDir(filepath.Join(d.root, "acme"))
	if len(entries) != 1 {
		t.Fatalf("abort left files: %v", entries)
	}
	for _, bad := range []string{"../x", "/etc/passwd", "a/../../b", ""} {
		if _, err := d.Create(bad); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
