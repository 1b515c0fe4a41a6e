package verify_test

import (
	"archive/zip"
	"bytes"
	"io"
	"maps"
	"testing"

	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/verify"
)

// FuzzZIP overwrites or inserts bytes anywhere in a signed bundle and
// verifies the result: verify never panics, and a ZIP it calls authentic
// is as long as the bundle (no byte added that some reader might take for
// content) and reads, with archive/zip, as exactly the members the exporter
// signed. Metadata a reader does not extract (a directory entry's file
// attributes, say) may differ.
func FuzzZIP(f *testing.F) {
	x, inc := demoExporter(f)
	good := x.zip(f, demo.Tenant, export.Input{IncidentID: inc.ID, IncludeContent: true})
	want := readMembers(good)
	if want == nil {
		f.Fatal("archive/zip cannot read the exported bundle")
	}

	f.Add(uint32(0), []byte{}, false)                          // the bundle itself
	f.Add(uint32(0), []byte("<html>"), true)                   // bytes before the first member
	f.Add(uint32(len(good)-22), []byte("PK\x05\x06"), true)    // a second end record
	f.Add(uint32(len(good)-2), []byte{1, 0, 'x'}, false)       // a comment
	f.Add(uint32(30), []byte("evil.html"), false)              // a local header's name
	f.Add(uint32(len(good)/2), []byte{0xff, 0xff, 0xff}, true) // inside a member
	f.Fuzz(func(t *testing.T, at uint32, patch []byte, insert bool) {
		z := bytes.Clone(good)
		i := int(at % uint32(len(z)+1))
		if insert {
			z = append(z[:i:i], append(patch, good[i:]...)...)
		} else {
			z = append(z[:i], patch...)
			if end := i + len(patch); end < len(good) {
				z = append(z, good[end:]...)
			}
		}
		rep := verify.ZIP(bytes.NewReader(z), int64(len(z)), verify.Options{Key: x.key.Public(), Out: io.Discard})
		if !rep.Authentic() {
			if bytes.Equal(z, good) {
				t.Fatalf("the untouched bundle does not verify: %v", rep.Failure)
			}
			return
		}
		if len(z) != len(good) {
			t.Fatalf("a ZIP of %d bytes verifies; the bundle has %d", len(z), len(good))
		}
		if got := readMembers(z); !maps.Equal(got, want) {
			t.Fatalf("a changed ZIP verifies, but archive/zip reads other members from it (%d, not %d)", len(got), len(want))
		}
	})
}

// readMembers returns each member of a ZIP as archive/zip reads it, or
// nil when it cannot.
func readMembers(z []byte) map[string]string {
	r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(r.File))
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			return nil
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil
		}
		if _, dup := out[f.Name]; dup {
			return nil
		}
		out[f.Name] = string(b)
	}
	return out
}
