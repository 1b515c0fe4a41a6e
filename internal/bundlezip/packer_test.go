package bundlezip

import (
	"crypto/sha256"
	"encoding/hex"
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
