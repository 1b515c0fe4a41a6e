package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/sqlite"
)

func TestLedgerVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	r := runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "no export ledger to verify") {
		t.Fatalf("empty data directory: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := runCLI(t, "", "demo", "--data", data, "--out", filepath.Join(dir, "out")); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 0 || r.stdout != "demo: ok: 15 entries (0 audit events) recomputed, 15 checkpoints hold, the latest of size 15 with its signature\n" {
		t.Fatalf("after the demo: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--all-signatures")
	if r.code != 0 || r.stdout != "demo: ok: 15 entries (0 audit events) recomputed, 15 checkpoints hold with their signatures, the latest of size 15\n" {
		t.Fatalf("with --all-signatures: %d %q %q", r.code, r.stdout, r.stderr)
	}
	store := openStore(t, data)
	lastCheck := func() runproof.AuditEvent {
		t.Helper()
		evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "demo", Category: runproof.AuditIntegrity, Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("integrity audit events: %v, %v", evs, err)
		}
		return evs[0]
	}
	if ev := lastCheck(); ev.Decision != runproof.DecisionAllow || ev.Action != "ledger.verify" || !strings.HasPrefix(ev.Detail, "ok: 15 entries") {
		t.Errorf("audit event of the check: %+v", ev)
	}

	// Against a checkpoint kept from before and the published key.
	cp, err := store.LedgerCheckpoint(ctx, "demo", 0)
	if err != nil {
		t.Fatal(err)
	}
	cpFile := writeFile(t, "demo.checkpoint", string(cp.Note))
	keys, err := signing.Open(filepath.Join(data, "signing-keys"))
	if err != nil {
		t.Fatal(err)
	}
	pub := writeFile(t, "pub.pem", string(signing.PublicPEM(keys.Active().Public())))
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--checkpoint", cpFile, "--key", pub)
	if r.code != 0 || !strings.Contains(r.stdout, "extends the given checkpoint of size 15") {
		t.Fatalf("with a kept checkpoint: %d %q %q", r.code, r.stdout, r.stderr)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub := writeFile(t, "other.pem", string(signing.PublicPEM(other)))
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--tenant", "demo", "--key", otherPub)
	wantError(t, r, 1, "entry 0: checkpoint of size 1: checkpoint not signed by a known key")

	// A record changed behind the triggers' back: entry 3 is the sealed
	// manifest of evidence.zip, and its sealed event says another manifest.
	entries, err := store.LedgerEntries(ctx, "demo", 3, 4)
	if err != nil || len(entries) != 1 || entries[0].Type != "runproof.manifest.v1" {
		t.Fatalf("entry 3: %+v %v", entries, err)
	}
	raw := store.(*sqlite.Store)
	for _, q := range []string{"DROP TRIGGER export_events_no_update",
		fmt.Sprintf("UPDATE export_events SET manifest_sha256 = '%s' WHERE export_id = '%s' AND kind = 'sealed'",
			runproof.DigestBytes(nil), entries[0].RecordID)} {
		if err := raw.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	wantError(t, r, 1, `ledger of tenant "demo": entry 3: does not match the record of export `+entries[0].RecordID)
	if !strings.Contains(r.stdout, "demo: FAILED at entry 3:") {
		t.Errorf("stdout %q", r.stdout)
	}
	if ev := lastCheck(); ev.Decision != runproof.DecisionDeny || !strings.HasPrefix(ev.Detail, "FAILED at entry 3:") {
		t.Errorf("audit event of the failed check: %+v", ev)
	}

	wantError(t, runCLI(t, "", "ledger", "verify", "--data", data, "--checkpoint", writeFile(t, "x", "not a checkpoint")), 2, "names no tenant")
	wantError(t, runCLI(t, "", "ledger", "verify", "--data", data, "--key", writeFile(t, "k", "nope")), 1, "neither a PEM public key nor a verifier key")
}
