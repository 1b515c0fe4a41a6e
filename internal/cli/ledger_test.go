package cli_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/sqlite"
)

func TestLedgerVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	// A data directory without a database is not taken for an empty one,
	// nor made: most likely --data names the wrong directory.
	r := runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 1 || r.stdout != "" || r.stderr != "runproof: no runproof database at "+filepath.Join(data, "runproof.db")+
		": give --data the data directory runproof serve uses (or --database its PostgreSQL URL)\n" {
		t.Fatalf("no data directory: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ledger verify made the data directory: %v", err)
	}
	if r := runCLI(t, "", "migrate", "--data", data); r.code != 0 {
		t.Fatalf("migrate: %d %s", r.code, r.stderr)
	}
	// An empty database: nothing to verify, and no key made for it.
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "no export ledger to verify") {
		t.Fatalf("empty database: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if pems, _ := filepath.Glob(filepath.Join(data, "signing-keys", "*.pem")); len(pems) > 0 {
		t.Fatalf("ledger verify made a signing key: %v", pems)
	}
	if r := runCLI(t, "", "demo", "--data", data, "--out", filepath.Join(dir, "out")); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 0 || r.stdout != "demo: ok: 51 entries (12 of exports, 3 of their ZIPs' manifests, 36 sealing 282 steps, 0 of audit events) recomputed, 16 checkpoints hold, the latest of size 51 with its signature; 5 incidents agree with their inflection steps\n" {
		t.Fatalf("after the demo: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--all-signatures")
	if r.code != 0 || r.stdout != "demo: ok: 51 entries (12 of exports, 3 of their ZIPs' manifests, 36 sealing 282 steps, 0 of audit events) recomputed, 16 checkpoints hold with their signatures, the latest of size 51; 5 incidents agree with their inflection steps\n" {
		t.Fatalf("with --all-signatures: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// A tenant without a ledger (a typo, say): said so, and no audit event
	// starts its ledger.
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--tenant", "nobody")
	if r.code != 0 || !strings.Contains(r.stdout, "nobody: ok: the ledger is empty: nothing has been exported or audited for this tenant") {
		t.Fatalf("a tenant without a ledger: %d %q %q", r.code, r.stdout, r.stderr)
	}
	store := openStore(t, data)
	if evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "nobody", Limit: 1}); err != nil || len(evs) != 0 {
		t.Errorf("audit events of the tenant without a ledger: %+v, %v", evs, err)
	}
	// A tenant whose audit events wait for its ledger is not taken for a
	// typo, and its check is recorded.
	runCLI(t, "", "keys", "create", "--tenant", "newcomer", "--role", "viewer", "--data", data)
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--tenant", "newcomer")
	if r.code != 0 || !strings.Contains(r.stdout, "newcomer: ok: the ledger is empty: its audit events wait for it") {
		t.Fatalf("a tenant whose events wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "newcomer", Category: runproof.AuditIntegrity, Limit: 1}); err != nil || len(evs) != 1 {
		t.Errorf("the check of a tenant whose events wait was not recorded: %+v, %v", evs, err)
	}
	lastCheck := func() runproof.AuditEvent {
		t.Helper()
		evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "demo", Category: runproof.AuditIntegrity, Limit: 1})
		if err != nil || len(evs) != 1 {
			t.Fatalf("integrity audit events: %v, %v", evs, err)
		}
		return evs[0]
	}
	if ev := lastCheck(); ev.Decision != runproof.DecisionAllow || ev.Action != "ledger.verify" || !strings.HasPrefix(ev.Detail, "ok: 51 entries") {
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
	if r.code != 0 || !strings.Contains(r.stdout, "extends the given checkpoint of size 51") {
		t.Fatalf("with a kept checkpoint: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// The same, saved by an editor that ends files its own way.
	edited := writeFile(t, "edited.checkpoint", strings.ReplaceAll(string(cp.Note), "\n", "\r\n")+"\r\n\r\n")
	if r := runCLI(t, "", "ledger", "verify", "--data", data, "--checkpoint", edited, "--key", pub); r.code != 0 {
		t.Errorf("with a kept checkpoint saved with CRLF and a blank line: %d %q %q", r.code, r.stdout, r.stderr)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	otherPub := writeFile(t, "other.pem", string(signing.PublicPEM(other)))
	r = runCLI(t, "", "ledger", "verify", "--data", data, "--tenant", "demo", "--key", otherPub)
	wantError(t, r, 1, `the ledger of tenant "demo": FAILED: checkpoint of size 36: checkpoint not signed by a known key: it is signed by `+keys.Active().ID)
	if !strings.Contains(r.stderr, "give its public key with --key") || !strings.Contains(r.stdout, "give its public key with --key") {
		t.Errorf("no hint at the key: %q %q", r.stdout, r.stderr)
	}
	// Wrong flags are said as such (exit 2) before anything is checked,
	// and recorded as no check.
	checks := func() int {
		t.Helper()
		evs, err := store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: "demo", Category: runproof.AuditIntegrity, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return len(evs)
	}
	before := checks()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--key", filepath.Join(dir, "nope.pem")}, "ledger verify: --key: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{[]string{"--key", cpFile}, "ledger verify: --key " + cpFile + " holds neither a PEM public key nor a verifier key"},
		{[]string{"--key", ""}, "ledger verify: --key is empty"},
		{[]string{"--checkpoint", dir}, "ledger verify: --checkpoint: read " + dir + ": is a directory"},
		{[]string{"--checkpoint", cpFile, "--tenant", "acme"}, `ledger verify: --checkpoint ` + cpFile + ` is tenant "demo"'s, not "acme"'s`},
		{[]string{"--tenant", ""}, "ledger verify: --tenant is empty"},
	} {
		r := runCLI(t, "", append([]string{"ledger", "verify", "--data", data}, c.args...)...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, "runproof: "+c.want) {
			t.Errorf("ledger verify %q: %d %q %q, want exit 2 and %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
	}
	if n := checks(); n != before {
		t.Errorf("wrong flags recorded %d checks", n-before)
	}

	// A record changed behind the triggers' back: entry 39 is the sealed
	// manifest of evidence.zip (after the steps of the 36 runs, and the
	// JSON, CSV and PDF exports), and its sealed event says another
	// manifest.
	entries, err := store.LedgerEntries(ctx, "demo", 39, 40)
	if err != nil || len(entries) != 1 || entries[0].Type != "runproof.manifest.v1" {
		t.Fatalf("entry 39: %+v %v", entries, err)
	}
	raw := store.(*sqlite.Store)
	// The trigger dropped first: nothing is changed yet, but the database
	// no longer refuses it.
	if err := raw.ExecRaw(ctx, "DROP TRIGGER export_events_no_update"); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	const dropped = "1 of the database's guard triggers is gone, disabled or changed: export_events_no_update on export_events (migration 004_sealed.sql)."
	wantError(t, r, 1, "ledger verify: "+dropped)
	if !strings.Contains(r.stdout, "demo: ok: 51 entries") || !strings.HasSuffix(r.stdout, "\ndatabase: FAILED: "+dropped+
		" The rows they guard can be changed behind runproof's back: find out who did it, and create them again as those migrations do\n") {
		t.Errorf("a trigger dropped: stdout %q", r.stdout)
	}
	for _, q := range []string{
		fmt.Sprintf("UPDATE export_events SET manifest_sha256 = '%s' WHERE export_id = '%s' AND kind = 'sealed'",
			runproof.DigestBytes(nil), entries[0].RecordID)} {
		if err := raw.ExecRaw(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	r = runCLI(t, "", "ledger", "verify", "--data", data)
	wantError(t, r, 1, `ledger of tenant "demo": FAILED at entry 39: does not match the record of export `+entries[0].RecordID)
	if !strings.Contains(r.stdout, "demo: FAILED at entry 39:") || !strings.Contains(r.stdout, "database: FAILED: "+dropped) {
		t.Errorf("stdout %q", r.stdout)
	}
	if ev := lastCheck(); ev.Decision != runproof.DecisionDeny || !strings.HasPrefix(ev.Detail, "FAILED at entry 39:") {
		t.Errorf("audit event of the failed check: %+v", ev)
	}

	wantError(t, runCLI(t, "", "ledger", "verify", "--data", data, "--checkpoint", writeFile(t, "x", "not a checkpoint")), 2, "is not a runproof ledger checkpoint")
	wantError(t, runCLI(t, "", "ledger", "verify", "--data", data, "--key", writeFile(t, "k", "nope")), 2, "neither a PEM public key nor a verifier key")
}

// A key given with --signing-key and later replaced by another: what it
// signed still verifies, since its public half is kept; without it, an
// export says which key signed the ledger's head instead of failing with
// an internal error.
// TestLedgerVerifyExportsWithoutLedger: exports with no ledger at all (made
// before runproof kept one, or the ledger taken out whole) are no empty
// ledger: ledger verify checks their tenant and names the first missing.
func TestLedgerVerifyExportsWithoutLedger(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	store := openStore(t, data)
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	req := runproof.ExportRequest{ID: "0199c0de-0000-7000-8000-000000000001", TenantID: "acme", Scope: runproof.ScopeLLMRun, RunID: "run-1",
		BundleType: runproof.BundleEvidence, Format: runproof.FormatJSON, RequestedBy: "key-1", Origin: runproof.OriginHuman,
		SourceComponent: "api", CreatedAt: at}
	if err := store.CreateExport(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: "acme", ExportID: req.ID, Kind: runproof.ExportEventCompleted,
		At: at.Add(time.Second), Checksum: runproof.DigestBytes([]byte("x")), SizeBytes: 1, BundleID: "EVD-1", Artifact: "acme/x.json"}); err != nil {
		t.Fatal(err)
	}
	if _, err := signing.Open(filepath.Join(data, "signing-keys")); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 1 || !strings.Contains(r.stdout, "acme: FAILED") || !strings.Contains(r.stdout, "export "+req.ID+" finished at") ||
		!strings.Contains(r.stdout, "the tenant has no ledger at all") || strings.Contains(r.stdout, "no export ledger to verify") {
		t.Fatalf("exports without a ledger: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestSigningKeyReplaced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keyFile := func(name string) string {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, name, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})))
	}
	k1, k2, k3 := keyFile("k1.pem"), keyFile("k2.pem"), keyFile("k3.pem")
	r := runCLI(t, "", "demo", "--data", data, "--out", filepath.Join(dir, "out"), "--signing-key", k1)
	if r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	// The commands it suggests name the key, without which they would refuse.
	if !strings.Contains(r.stdout, "runproof serve --data "+data+" --signing-key "+k1+" &") ||
		!strings.Contains(r.stdout, "runproof keys create --data "+data+" --signing-key "+k1+" --tenant demo") {
		t.Errorf("demo's suggestions: %q", r.stdout)
	}
	privateKeys := func(data string) []string {
		names, err := filepath.Glob(filepath.Join(data, "signing-keys", "*.pem"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if made := privateKeys(data); len(made) != 0 { // it would sign whatever runs without --signing-key
		t.Errorf("a key was made under --data though --signing-key was given: %v", made)
	}
	runs, err := openStore(t, data).ListRuns(ctx, runproof.ListRunsParams{TenantID: "demo", Limit: 1})
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs: %v %v", runs, err)
	}
	exportWith := func(key string) result {
		return runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", runs[0].ID, "--format", "zip",
			"-o", filepath.Join(dir, "x.zip"), "--signing-key", key)
	}
	if r := exportWith(k2); r.code != 0 {
		t.Fatalf("export with a new key: %d %s", r.code, r.stderr)
	}
	if r := runCLI(t, "", "ledger", "verify", "--data", data); r.code != 0 {
		t.Fatalf("ledger verify after the key changed: %d %q %q", r.code, r.stdout, r.stderr)
	}

	if err := os.RemoveAll(filepath.Join(data, "signing-keys", "used")); err != nil {
		t.Fatal(err)
	}
	before, err := openStore(t, data).ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"zip", "json"} {
		r := runCLI(t, "", "export", "--data", data, "--tenant", "demo", "--run", runs[0].ID, "--format", format,
			"-o", filepath.Join(dir, "x."+format), "--signing-key", k3)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if last := lines[len(lines)-1]; r.code != 1 || !strings.HasPrefix(last, "runproof: ") ||
			!strings.Contains(last, "which this runproof does not know, so nothing can be appended") {
			t.Errorf("%s export over a head signed by a key no longer known: %d %q", format, r.code, r.stderr)
		}
	}
	// Refused before it was made: no export is left out of the ledger.
	if after, err := openStore(t, data).ListExports(ctx, runproof.ListExportsParams{TenantID: "demo", Limit: 1000}); err != nil || len(after) != len(before) {
		t.Errorf("%d exports after the refused ones, %d before (%v)", len(after), len(before), err)
	}
	if r := runCLI(t, "", "ledger", "verify", "--data", data, "--signing-key", k2); r.code != 0 {
		t.Errorf("ledger verify after the refused exports: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// A server that could append to no ledger is refused at its start,
	// rather than refusing every export once it serves.
	wantError(t, runCLI(t, "", "serve", "--addr", "127.0.0.1:0", "--data", data, "--signing-key", k3), 1,
		`cannot serve: the latest checkpoint of the ledger of tenant "demo" is signed by key`)
	// So is one given the database alone, restored without its keys; and it
	// makes none.
	restored := filepath.Join(dir, "restored")
	if err := os.MkdirAll(restored, 0o700); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(data, "runproof.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "runproof.db"), db, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"serve", "--addr", "127.0.0.1:0"}, {"demo", "--out", filepath.Join(dir, "out2")}} {
		wantError(t, runCLI(t, "", append(args, "--data", restored)...), 1,
			"no signing keys in "+filepath.Join(restored, "signing-keys")+", but the database holds the ledger of demo")
	}
	if made := privateKeys(restored); len(made) != 0 {
		t.Errorf("a refused server made a key: %v", made)
	}
}

// TestExportNeedsRecords: export refuses a data directory without a
// database, and one without the signing keys of the ledger its database
// holds, naming --data, and makes neither; so does ledger verify.
func TestExportNeedsRecords(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	args := []string{"export", "--tenant", "demo", "--run", "r1", "--format", "json", "-o", filepath.Join(t.TempDir(), "x.json"), "--data", data}
	r := runCLI(t, "", args...)
	if r.code != 1 || !strings.Contains(r.stderr, "no runproof database at "+filepath.Join(data, "runproof.db")+": give --data") {
		t.Errorf("no data directory: %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(data); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("export made the data directory: %v", err)
	}
	if r := runCLI(t, "", "demo", "--data", data, "--out", filepath.Join(dir, "out")); r.code != 0 {
		t.Fatalf("demo: %d %s", r.code, r.stderr)
	}
	keys := filepath.Join(data, "signing-keys")
	if err := os.Rename(keys, keys+".elsewhere"); err != nil {
		t.Fatal(err)
	}
	want := "no signing keys in " + keys + ", but the database holds the ledger of demo, signed with keys kept elsewhere: give --data"
	for _, args := range [][]string{args, {"ledger", "verify", "--data", data}} {
		if r := runCLI(t, "", args...); r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("%s without the ledger's keys: %d %q", args[0], r.code, r.stderr)
		}
	}
	if pems, _ := filepath.Glob(filepath.Join(keys, "*.pem")); len(pems) > 0 {
		t.Errorf("a signing key was made: %v", pems)
	}
}

// TestLedgerVerifyFindsWaitingTenants: with no --tenant, a tenant that has
// only ingested steps, and so no ledger yet, is listed with its steps
// waiting, not passed over as if nothing were there.
func TestLedgerVerifyFindsWaitingTenants(t *testing.T) {
	data := t.TempDir()
	file := writeFile(t, "runs.ndjson", fmt.Sprintf(`{"run": {"run_id": "r1", "agent_id": "a", "started_at": %q}}`, stamp(0))+"\n"+
		fmt.Sprintf(`{"step": {"run_id": "r1", "step_index": 0, "timestamp": %q, "step_type": "llm"}}`, stamp(0))+"\n")
	if r := runCLI(t, "", "ingest", "--tenant", "acme", "--data", data, file); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := runCLI(t, "", "ledger", "verify", "--data", data)
	if r.code != 0 || !strings.Contains(r.stdout, "acme: ok: the ledger is empty; 1 run has steps not sealed yet") {
		t.Errorf("ledger verify of every tenant: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
