package bundlezip

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
)

// TestPackersInARow: members packed one after another, on deflate writers
// taken back from the pool, each inflate to what was written, with its
// size and digest; a packer is done once its member is.
func TestPackersInARow(t *testing.T) {
	for i, data := range []string{strings.Repeat("runproof ", 50_000), "second", ""} {
		p, err := NewPacker("m")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(p, data)
		m, err := p.Member()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(flate.NewReader(m.packed.deflated.Reader()))
		if err != nil || string(got) != data {
			t.Fatalf("member %d inflates to %d bytes (%v), want %d", i, len(got), err, len(data))
		}
		sum := sha256.Sum256([]byte(data))
		if f := m.packed.file; f.Size != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("member %d: %+v", i, f)
		}
		if _, err := p.Write([]byte("more")); err == nil {
			t.Errorf("member %d: a write after the member was packed did not fail", i)
		}
		if _, err := p.Member(); err == nil {
			t.Errorf("member %d: packed twice", i)
		}
	}
}

// fullSpill keeps nothing: the disk under it is full.
type fullSpill struct{ bytes.Buffer }

func (*fullSpill) Flush() error      { return errors.New("no space left on device") }
func (*fullSpill) Reader() io.Reader { return strings.NewReader("") }
func (*fullSpill) Size() int64       { return 0 }

// TestPackerSpillFull: a member whose spill cannot keep it fails when it
// is packed, before any manifest vouches for it.
func TestPackerSpillFull(t *testing.T) {
	p, err := NewPackerTo("m", &fullSpill{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(p, "data")
	if _, err := p.Member(); err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("packing into a full spill: %v", err)
	}
}
