package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

const keyName = "runproof.test"

// testKey is the ledger's signing key in tests; otherKey an attacker's.
var (
	testKey  = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	otherKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
)

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 123456000, time.UTC)

func newLedger(t testing.TB, s runproof.Store) *ledger.Ledger {
	return newLedgerKey(t, s, testKey)
}

func newLedgerKey(t testing.TB, s runproof.Store, key ed25519.PrivateKey) *ledger.Ledger {
	t.Helper()
	l, err := ledger.New(s, key, keyName, ledger.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// finish stores n finished exports of tenant, numbered from first (every
// fifth one failed), and returns their records.
func finish(t testing.TB, s runproof.Store, tenant string, first, n int) []runproof.Export {
	t.Helper()
	ctx := context.Background()
	out := make([]runproof.Export, 0, n)
	for i := first; i < first+n; i++ {
		req, ev := finished(tenant, i)
		if err := s.CreateExport(ctx, req); err != nil {
			t.Fatal(err)
		}
		if err := s.AppendExportEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
		rec, err := s.GetExport(ctx, tenant, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

// finished returns the request and the outcome of made-up export number i
// of tenant: completed, or failed when i%5 == 4.
func finished(tenant string, i int) (runproof.ExportRequest, runproof.ExportEvent) {
	req := runproof.ExportRequest{ID: fmt.Sprintf("%s-x%04d", tenant, i), TenantID: tenant,
		Scope: runproof.ScopeLLMRun, RunID: "run-1", BundleType: runproof.BundleEvidence, Format: runproof.FormatJSON,
		RequestedBy: "key-1", Origin: runproof.OriginHuman, SourceComponent: "api",
		CreatedAt: t0.Add(time.Duration(i) * time.Second)}
	ev := runproof.ExportEvent{TenantID: tenant, ExportID: req.ID, Kind: runproof.ExportEventCompleted,
		At: req.CreatedAt.Add(time.Millisecond), Checksum: runproof.DigestBytes([]byte(req.ID)), SizeBytes: int64(100 + i),
		BundleID: fmt.Sprintf("EVD-%04d", i), Artifact: tenant + "/" + req.ID + ".json"}
	if i%5 == 4 {
		ev = runproof.ExportEvent{TenantID: tenant, ExportID: req.ID, Kind: runproof.ExportEventFailed,
			At: ev.At, Reason: "the run has no steps"}
	}
	return req, ev
}

// appendEach appends the exports one call each, so that every size has a
// checkpoint.
func appendEach(t testing.TB, l *ledger.Ledger, recs []runproof.Export) {
	t.Helper()
	for _, r := range recs {
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// checkProof checks a proof as an outsider does, with tlog and note only.
func checkProof(p ledger.Proof, vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(v))
	if err != nil {
		return err
	}
	tree, err := tlog.ParseTree([]byte(n.Text))
	if err != nil {
		return err
	}
	return tlog.CheckRecord(p.RecordProof, tree.N, tree.Hash, p.Index, tlog.RecordHash(p.Leaf))
}

// inPages runs fn with the page size Verify reads by default (0), then
// with three entries a page, so that a small log spans several pages.
func inPages(fn func(pageSize int64)) {
	fn(0)
	fn(3)
}

// wantMismatch fails the test unless err is a ledger mismatch at index.
func wantMismatch(t *testing.T, err error, index int64) {
	t.Helper()
	var m *ledger.Mismatch
	if !errors.As(err, &m) {
		t.Fatalf("got %v, want a mismatch at entry %d", err, index)
	}
	if m.Index != index {
		t.Fatalf("mismatch at entry %d, want %d: %v", m.Index, index, err)
	}
	t.Logf("found: %v", err)
}

// engine is a store with raw SQL access, for changing what the store
// never changes.
type engine struct {
	name string
	storetest.Harness
}

func eachEngine(t *testing.T, fn func(t *testing.T, e engine)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, engine{"sqlite", storetest.SQLiteHarness(t)}) })
	t.Run("postgres", func(t *testing.T) { fn(t, engine{"postgres", storetest.PostgresHarness(t)}) })
}

// exec runs raw SQL statements, failing the test on the first error.
func (e engine) exec(t *testing.T, queries ...string) {
	t.Helper()
	for _, q := range queries {
		if err := e.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// dropTriggers removes what keeps the export and ledger tables
// append-only, as someone with the database's owner rights could.
func (e engine) dropTriggers(t *testing.T) {
	t.Helper()
	for _, table := range []string{"export_events", "ledger_entries", "ledger_hashes", "ledger_checkpoints"} {
		if e.name == "sqlite" {
			e.exec(t, "DROP TRIGGER "+table+"_no_update", "DROP TRIGGER "+table+"_no_delete")
		} else {
			e.exec(t, "DROP TRIGGER "+table+"_append_only ON "+table)
		}
	}
}

// blob renders bytes as an SQL literal of the engine.
func (e engine) blob(b []byte) string {
	if e.name == "sqlite" {
		return "X'" + hex.EncodeToString(b) + "'"
	}
	return `'\x` + hex.EncodeToString(b) + `'::bytea`
}

// verifyAs checks a tenant's log with every verifier key l accepts, as the
// CLI does with those of its keyring, against older when it is not nil.
func verifyAs(ctx context.Context, s runproof.Store, l *ledger.Ledger, tenant string, older []byte) (ledger.Report, error) {
	return verifyPaged(ctx, s, l, tenant, older, 0)
}

// verifyPaged is verifyAs reading pageSize entries at a time.
func verifyPaged(ctx context.Context, s runproof.Store, l *ledger.Ledger, tenant string, older []byte, pageSize int64) (ledger.Report, error) {
	return ledger.Verify(ctx, s, ledger.VerifyParams{TenantID: tenant, VerifierKeys: l.VerifierKeys(), Checkpoint: older, PageSize: pageSize})
}
