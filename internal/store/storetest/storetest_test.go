package storetest

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
)

var update = flag.Bool("update", false, "rewrite "+goldenPath+" from the SQLite engine")

// TestEnginesAgree runs the scenario on every engine available and checks
// that they give the same bytes, and the golden ones.
func TestEnginesAgree(t *testing.T) {
	dumps := map[string][]byte{}
	Each(t, func(t *testing.T, s runproof.Store) {
		dumps[t.Name()] = scenario(t, s)
	})
	sqlite := dumps[t.Name()+"/sqlite"]
	if *update && sqlite != nil {
		if err := os.WriteFile(goldenPath, sqlite, 0o644); err != nil {
			t.Fatal(err)
		}
		golden = sqlite
	}
	for name, d := range dumps {
		if !bytes.Equal(d, golden) {
			t.Errorf("%s: dump differs from %s:\n%s", name, goldenPath, d)
		}
	}
	if pg := dumps[t.Name()+"/postgres"]; pg != nil && sqlite != nil && !bytes.Equal(pg, sqlite) {
		t.Errorf("SQLite and PostgreSQL dumps differ")
	}
}
