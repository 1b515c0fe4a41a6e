package httpapi_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// newLedgerEnv is newEnv with an export ledger, as serve runs.
func newLedgerEnv(t *testing.T, store runproof.Store) (*env, *ledger.Ledger) {
	t.Helper()
	l, err := ledger.New(store, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, ed25519.SeedSize)), "runproof.test", ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{Ledger: l}), httpapi.Options{Ledger: l}))
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, svc: svc}, l
}

func TestLedgerAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e, l := newLedgerEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		exporter, viewer, other := e.key("acme", runproof.RoleExporter), e.key("acme", runproof.RoleViewer), e.key("globex", runproof.RoleAdmin)
		e.must(404, e.do("GET", "/api/v1/ledger/checkpoint", viewer, nil))

		// Every export made, through either route, is in the ledger.
		inc := stoppedRun(t, e, admin, agent, "r-1")
		var ids []string
		for range 2 {
			var rec struct{ ID, Checksum string }
			e.must(201, e.do("POST", "/api/v1/exports", exporter, map[string]any{"incident_id": inc, "format": "json"})).decode(t, &rec)
			ids = append(ids, rec.ID)
		}
		r := e.must(200, e.do("POST", "/api/v1/incidents/"+inc+"/export/soc2", exporter, map[string]any{"format": "csv"}))
		ids = append(ids, r.header.Get("X-Export-Id"))

		r = e.must(200, e.do("GET", "/api/v1/ledger/checkpoint", viewer, nil))
		if !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Errorf("checkpoint content type %q", r.header.Get("Content-Type"))
		}
		origin, tree, err := ledger.OpenCheckpoint(r.body, l.VerifierKey())
		if err != nil || origin != "runproof/ledger/acme" || tree.N != 3 {
			t.Fatalf("checkpoint %q: origin %q, size %d, %v", r.body, origin, tree.N, err)
		}

		for i, id := range ids {
			var rec struct {
				Checksum string
				BundleID string `json:"bundle_id"`
			}
			e.must(200, e.do("GET", "/api/v1/exports/"+id, exporter, nil)).decode(t, &rec)
			var p ledger.Proof
			r := e.must(200, e.do("GET", "/api/v1/exports/"+id+"/proof", exporter, nil))
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if p.Index != int64(i) || p.Entry.ExportID != id || p.Entry.Checksum != rec.Checksum || p.Entry.BundleID != rec.BundleID ||
				p.VerifierKey != l.VerifierKey() {
				t.Errorf("proof of %s: %s", id, r.body)
			}
			v, _ := note.NewVerifier(p.VerifierKey)
			n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(v))
			if err != nil {
				t.Fatal(err)
			}
			tree, _ := tlog.ParseTree([]byte(n.Text))
			if err := tlog.CheckRecord(p.RecordProof, tree.N, tree.Hash, p.Index, tlog.RecordHash(p.Leaf)); err != nil {
				t.Errorf("proof of %s: %v", id, err)
			}
		}
		e.must(404, e.do("GET", "/api/v1/exports/"+ids[0]+"/proof", other, nil))
		e.must(404, e.do("GET", "/api/v1/exports/nope/proof", exporter, nil))

		var c struct {
			OldSize, NewSize int64
			OldCheckpoint    string      `json:"old_checkpoint"`
			NewCheckpoint    string      `json:"new_checkpoint"`
			TreeProof        []tlog.Hash `json:"tree_proof"`
		}
		e.must(200, e.do("GET", "/api/v1/ledger/consistency?from=1", viewer, nil)).decode(t, &c)
		_, older, err := ledger.OpenCheckpoint([]byte(c.OldCheckpoint), l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		_, newer, err := ledger.OpenCheckpoint([]byte(c.NewCheckpoint), l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if older.N != 1 || newer.N != 3 {
			t.Errorf("consistency between sizes %d and %d, want 1 and 3", older.N, newer.N)
		}
		if err := tlog.CheckTree(c.TreeProof, newer.N, newer.Hash, older.N, older.Hash); err != nil {
			t.Error(err)
		}
		e.must(200, e.do("GET", "/api/v1/ledger/consistency?from=2&to=3", viewer, nil))
		for _, q := range []string{"", "?from=0", "?from=x", "?from=1&to=-1", "?from=3&to=2"} {
			e.must(422, e.do("GET", "/api/v1/ledger/consistency"+q, viewer, nil))
		}
		var missing problemDoc
		e.must(404, e.do("GET", "/api/v1/ledger/consistency?from=1&to=9", viewer, nil)).decode(t, &missing)
		if !strings.Contains(missing.Detail, "not at every size") {
			t.Errorf("a size with no checkpoint: %q does not say which sizes have one", missing.Detail)
		}
		e.must(422, e.do("GET", "/api/v1/ledger/consistency?from=9", viewer, nil))
		e.must(422, e.do("GET", "/api/v1/ledger/consistency?from=%2B1", viewer, nil))
		e.must(404, e.do("GET", "/api/v1/ledger/consistency?from=1", other, nil))
	})

	t.Run("without a ledger", func(t *testing.T) {
		e := newEnv(t, storetest.OpenSQLite(t))
		exporter := e.key("acme", runproof.RoleExporter)
		for _, path := range []string{"/api/v1/ledger/checkpoint", "/api/v1/ledger/consistency?from=1", "/api/v1/exports/x/proof"} {
			r := e.must(503, e.do("GET", path, exporter, nil))
			if r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: content type %q", path, r.header.Get("Content-Type"))
			}
		}
	})
}
