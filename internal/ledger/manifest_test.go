package ledger_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
	"golang.org/x/mod/sumdb/tlog"
)

// testSigner is testKey as the exporter holds it: checkpoints and
// manifests signed under its key id.
var testSigner = signing.Key{ID: signing.KeyID(testKey.Public().(ed25519.PublicKey)), Private: testKey}

// newZIPLedger returns a ledger signing as the exporter's does: under the
// key id of testKey.
func newZIPLedger(t testing.TB, s runproof.Store) *ledger.Ledger {
	t.Helper()
	l, err := ledger.New(s, testKey, testSigner.ID, ledger.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sealedZIP is a ZIP export sealed as the exporter seals it: its request,
// the signed manifest, the sealed event and the manifest leaf in the
// ledger, not yet finished.
type sealedZIP struct {
	rec      runproof.Export
	manifest []byte
	sealed   bundlezip.Sealed
	index    int64
}

func sealZIP(t testing.TB, s runproof.Store, l *ledger.Ledger, tenant string, i int) sealedZIP {
	t.Helper()
	ctx := context.Background()
	req := runproof.ExportRequest{ID: fmt.Sprintf("%s-z%04d", tenant, i), TenantID: tenant,
		Scope: runproof.ScopeLLMRun, RunID: "run-1", BundleType: runproof.BundleEvidence, Format: runproof.FormatZIP,
		RequestedBy: "key-1", Origin: runproof.OriginHuman, SourceComponent: "api",
		CreatedAt: t0.Add(time.Duration(i) * time.Second)}
	if err := s.CreateExport(ctx, req); err != nil {
		t.Fatal(err)
	}
	m := bundlezip.Manifest{ExportID: req.ID, TenantID: tenant, BundleID: fmt.Sprintf("EVD-Z%04d", i),
		BundleType: req.BundleType, CreatedAt: runproof.FormatTime(req.CreatedAt), KeyID: testSigner.ID,
		Population: bundlezip.Population{Scope: req.Scope, RunID: req.RunID, Runs: 1}}
	sz, err := bundlezip.Seal(m, []bundlezip.Member{{Name: bundlezip.BundleName, Data: []byte(`{"bundle":` + fmt.Sprint(i) + `}`)}}, testSigner)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: tenant, ExportID: req.ID, Kind: runproof.ExportEventSealed,
		At: req.CreatedAt.Add(time.Millisecond), BundleID: m.BundleID, KeyID: m.KeyID,
		ManifestSHA256: runproof.DigestBytes(sz.ManifestJSON)}); err != nil {
		t.Fatal(err)
	}
	rec, err := s.GetExport(ctx, tenant, req.ID)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := l.AppendManifest(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	return sealedZIP{rec: rec, manifest: sz.ManifestJSON, sealed: sz, index: idx}
}

// end records the outcome of a sealed export (failed when reason is not
// empty) and appends its finished leaf.
func (z sealedZIP) end(t testing.TB, s runproof.Store, l *ledger.Ledger, reason string) runproof.Export {
	t.Helper()
	ctx := context.Background()
	ev := runproof.ExportEvent{TenantID: z.rec.TenantID, ExportID: z.rec.ID, Kind: runproof.ExportEventCompleted,
		At: z.rec.CreatedAt.Add(2 * time.Millisecond), Checksum: runproof.DigestBytes([]byte(z.rec.ID)), SizeBytes: 4096,
		BundleID: z.rec.BundleID, Artifact: z.rec.TenantID + "/" + z.rec.ID + ".zip"}
	if reason != "" {
		ev = runproof.ExportEvent{TenantID: z.rec.TenantID, ExportID: z.rec.ID, Kind: runproof.ExportEventFailed,
			At: ev.At, Reason: reason}
	}
	if err := s.AppendExportEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	rec, err := s.GetExport(ctx, z.rec.TenantID, z.rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestManifestEntryBytes(t *testing.T) {
	s := storetest.OpenSQLite(t)
	z := sealZIP(t, s, newZIPLedger(t, s), "acme", 3)
	got, err := ledger.ManifestLeaf(z.manifest)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"bundle_id":"EVD-Z0003","bundle_type":"evidence","created_at":"2026-01-02T15:04:08.123456Z",` +
		`"export_id":"acme-z0003","key_id":"` + testSigner.ID + `","manifest_sha256":"` + runproof.DigestBytes(z.manifest) + `",` +
		`"tenant_id":"acme","type":"runproof.manifest.v1"}`
	if string(got) != want {
		t.Errorf("leaf of manifest.json:\n got %s\nwant %s", got, want)
	}
	e, err := ledger.ManifestEntryFor(z.rec)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := e.Bytes(); string(b) != want {
		t.Errorf("leaf of the record:\n got %s\nwant %s", b, want)
	}
	if back, err := ledger.ParseManifestEntry(got); err != nil || back != e {
		t.Errorf("ParseManifestEntry: %+v, %v", back, err)
	}
	if _, err := ledger.ParseExportEntry(got); err == nil {
		t.Error("a manifest leaf parsed as an export leaf")
	}

	unsealed := finish(t, s, "acme", 0, 1)[0]
	if _, err := ledger.ManifestEntryFor(unsealed); runproof.ErrorCode(err) != runproof.EINVALID {
		t.Errorf("manifest entry of an unsealed export: %v, want EINVALID", err)
	}
	for _, bad := range []string{`[]`, `{"export_id":"x"}`, `not json`} {
		if _, err := ledger.ManifestLeaf([]byte(bad)); err == nil {
			t.Errorf("ManifestLeaf(%s): no error", bad)
		}
	}
}

// TestAppendManifest: a ZIP export has two leaves, its sealed manifest and
// then its outcome; both are proven, appended once, and recomputed by
// Verify, also when the export failed after it was sealed.
func TestAppendManifest(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s runproof.Store) {
		ctx := context.Background()
		l := newZIPLedger(t, s)
		appendEach(t, l, finish(t, s, "acme", 0, 2))
		z := sealZIP(t, s, l, "acme", 2)
		if z.index != 2 {
			t.Errorf("manifest leaf at %d, want 2", z.index)
		}
		if i, err := l.AppendManifest(ctx, z.rec); err != nil || i != 2 {
			t.Errorf("appending the manifest again: %d, %v; want 2", i, err)
		}
		other := z.rec
		other.ManifestSHA256 = runproof.DigestBytes([]byte("other"))
		if _, err := l.AppendManifest(ctx, other); runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("another manifest for the export: %v, want ECONFLICT", err)
		}
		if _, err := l.AppendManifest(ctx, finish(t, s, "acme", 9, 1)[0]); runproof.ErrorCode(err) != runproof.EINVALID {
			t.Errorf("manifest of an unsealed export: %v, want EINVALID", err)
		}
		_, err := l.Prove(ctx, "acme", z.rec.ID)
		if runproof.ErrorCode(err) != runproof.ECONFLICT {
			t.Errorf("proof of the export before it ended: %v, want ECONFLICT", err)
		}
		rec := z.end(t, s, l, "")
		failed := sealZIP(t, s, l, "acme", 3)
		failedRec := failed.end(t, s, l, "disk full")
		if failedRec.BundleID != "EVD-Z0003" {
			t.Errorf("failed after sealing: bundle id %q, want the sealed one", failedRec.BundleID)
		}

		mp, err := l.ProveManifest(ctx, "acme", z.rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Against the checkpoint its own append signed, not the latest (6).
		if mp.Index != 2 || mp.Manifest == nil || mp.Manifest.ManifestSHA256 != runproof.DigestBytes(z.manifest) || mp.TreeSize != 3 {
			t.Errorf("manifest proof: %+v", mp)
		}
		if err := checkProof(mp, l.VerifierKey()); err != nil {
			t.Error(err)
		}
		p, err := l.Prove(ctx, "acme", z.rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.Index != 3 || p.Manifest != nil || p.Entry.Checksum != rec.Checksum {
			t.Errorf("export proof: %+v", p)
		}
		b, _ := json.Marshal(p)
		if strings.Contains(string(b), `"manifest"`) {
			t.Errorf("an export proof has a manifest member: %s", b)
		}
		b, _ = json.Marshal(mp)
		if strings.Contains(string(b), `"entry"`) {
			t.Errorf("a manifest proof has an entry member: %s", b)
		}
		_, err = l.ProveManifest(ctx, "acme", finish(t, s, "acme", 10, 1)[0].ID)
		if runproof.ErrorCode(err) != runproof.ENOTFOUND || !strings.Contains(err.Error(), "only ZIP exports") {
			t.Errorf("manifest proof of an export without one: %v", err)
		}
		_, err = l.ProveManifest(ctx, "other", z.rec.ID)
		if runproof.ErrorCode(err) != runproof.ENOTFOUND {
			t.Errorf("manifest proof of another tenant's export: %v, want ENOTFOUND", err)
		}

		rep, err := ledger.Verify(ctx, s, ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey()},
			FinishedBefore: t0.Add(time.Hour)})
		var m *ledger.Mismatch
		if err == nil || !errors.As(err, &m) || !strings.Contains(err.Error(), "not in the ledger") {
			t.Errorf("verify with exports 9 and 10 left out: %v", err)
		}
		appendEach(t, l, []runproof.Export{mustGet(t, s, "acme-x0009"), mustGet(t, s, "acme-x0010")})
		rep, err = ledger.Verify(ctx, s, ledger.VerifyParams{TenantID: "acme", VerifierKeys: []string{l.VerifierKey()},
			FinishedBefore: t0.Add(time.Hour)})
		if err != nil || rep.Entries != 8 {
			t.Errorf("verify: %+v, %v", rep, err)
		}
	})
}

func mustGet(t *testing.T, s runproof.Store, id string) runproof.Export {
	t.Helper()
	rec, err := s.GetExport(context.Background(), "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestTamperSealed changes a sealed ZIP export behind the triggers' back:
// verification names its manifest leaf.
func TestTamperSealed(t *testing.T) {
	forged := runproof.DigestBytes([]byte("forged"))
	drills := []struct {
		name   string
		index  int64
		tamper func(t *testing.T, e engine, z sealedZIP)
	}{
		{"edit the sealed manifest's digest", 2, func(t *testing.T, e engine, z sealedZIP) {
			e.exec(t, fmt.Sprintf("UPDATE export_events SET manifest_sha256 = '%s' WHERE export_id = '%s' AND kind = 'sealed'", forged, z.rec.ID))
		}},
		{"edit the sealed key id", 2, func(t *testing.T, e engine, z sealedZIP) {
			e.exec(t, fmt.Sprintf("UPDATE export_events SET key_id = 'ed25519:0000000000000000' WHERE export_id = '%s'", z.rec.ID))
		}},
		{"edit the manifest leaf", 2, func(t *testing.T, e engine, z sealedZIP) {
			leaf := bytes.Replace(z.leaf(t), []byte(runproof.DigestBytes(z.manifest)), []byte(forged), 1)
			e.exec(t, fmt.Sprintf("UPDATE ledger_entries SET data = %s WHERE idx = 2", e.blob(leaf)))
		}},
		{"edit the sealed event and the leaf alike", 2, func(t *testing.T, e engine, z sealedZIP) {
			leaf := bytes.Replace(z.leaf(t), []byte(runproof.DigestBytes(z.manifest)), []byte(forged), 1)
			e.exec(t, fmt.Sprintf("UPDATE export_events SET manifest_sha256 = '%s' WHERE export_id = '%s' AND kind = 'sealed'", forged, z.rec.ID),
				fmt.Sprintf("UPDATE ledger_entries SET data = %s WHERE idx = 2", e.blob(leaf)))
		}},
		{"delete the sealed event", 2, func(t *testing.T, e engine, z sealedZIP) {
			e.exec(t, fmt.Sprintf("DELETE FROM export_events WHERE export_id = '%s' AND kind = 'sealed'", z.rec.ID))
		}},
		{"retype the manifest leaf", 2, func(t *testing.T, e engine, z sealedZIP) {
			e.exec(t, "UPDATE ledger_entries SET entry_type = 'runproof.export.v2' WHERE idx = 2")
		}},
		{"swap the types of the export's two leaves", 2, func(t *testing.T, e engine, z sealedZIP) {
			e.exec(t, "UPDATE ledger_entries SET entry_type = 'x' WHERE idx = 2",
				"UPDATE ledger_entries SET entry_type = 'runproof.manifest.v1' WHERE idx = 3",
				"UPDATE ledger_entries SET entry_type = 'runproof.export.v1' WHERE idx = 2")
		}},
	}
	for _, d := range drills {
		t.Run(d.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, e engine) {
				ctx := context.Background()
				l, z := zipLedger(t, e)
				proof, err := l.ProveManifest(ctx, "acme", z.rec.ID)
				if err != nil {
					t.Fatal(err)
				}
				e.dropTriggers(t)
				d.tamper(t, e, z)
				inPages(func(pageSize int64) {
					_, err := verifyPaged(ctx, e.Store, l, "acme", nil, pageSize)
					wantMismatch(t, err, d.index)
				})
				if err := checkProof(proof, l.VerifierKey()); err != nil {
					t.Errorf("the proof taken before: %v", err)
				}
			})
		})
	}
}

// zipLedger returns a ledger that verifies, of two finished exports, a
// completed ZIP export (its manifest at entry 2, its export leaf at 3) and
// two more finished exports.
func zipLedger(t *testing.T, e engine) (*ledger.Ledger, sealedZIP) {
	t.Helper()
	l := newZIPLedger(t, e.Store)
	appendEach(t, l, finish(t, e.Store, "acme", 0, 2))
	z := sealZIP(t, e.Store, l, "acme", 2)
	z.end(t, e.Store, l, "")
	appendEach(t, l, finish(t, e.Store, "acme", 4, 2))
	if _, err := verifyAs(context.Background(), e.Store, l, "acme", nil); err != nil {
		t.Fatalf("before tampering: %v", err)
	}
	return l, z
}

// TestCutTailFilledAgain: a tail cut with its checkpoints, then filled
// again by the repair of missing exports (Sync) under new checkpoints,
// verifies entry by entry; a completed ZIP whose sealed manifest went with
// the tail gives it away.
func TestCutTailFilledAgain(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		l, z := zipLedger(t, e)
		e.dropTriggers(t)
		e.exec(t, "DELETE FROM ledger_entries WHERE idx >= 2",
			fmt.Sprintf("DELETE FROM ledger_hashes WHERE idx >= %d", tlog.StoredHashCount(2)),
			"DELETE FROM ledger_checkpoints WHERE tree_size > 2")
		if n, err := l.Sync(ctx, "acme"); err != nil || n != 3 {
			t.Fatalf("sync appended %d, %v; want the 3 exports cut", n, err)
		}
		_, err := verifyAs(ctx, e.Store, l, "acme", nil)
		wantMismatch(t, err, -1)
		if !strings.Contains(err.Error(), z.rec.ID+", a ZIP completed at") {
			t.Errorf("the mismatch does not name the ZIP: %v", err)
		}
	})
}

// leaf returns the manifest leaf of the sealed export.
func (z sealedZIP) leaf(t *testing.T) []byte {
	t.Helper()
	b, err := ledger.ManifestLeaf(z.manifest)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCheckManifestProof checks proof.json against manifest.json as they
// are and altered, with the published key, another key and none.
func TestCheckManifestProof(t *testing.T) {
	ctx := context.Background()
	s := storetest.OpenSQLite(t)
	l := newZIPLedger(t, s)
	appendEach(t, l, finish(t, s, "acme", 0, 5))
	z := sealZIP(t, s, l, "acme", 5)
	p, err := l.ProveManifest(ctx, "acme", z.rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	z.end(t, s, l, "")
	good, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	pub := testSigner.Public()
	c, err := ledger.CheckManifestProof(z.manifest, good, pub)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExportID != z.rec.ID || c.Index != 5 || c.Tree.N != 6 || c.Origin != "runproof/ledger/acme" || c.Signer != testSigner.ID || c.OwnKey {
		t.Errorf("check: %+v", c)
	}
	if c, err := ledger.CheckManifestProof(z.manifest, good, nil); err != nil || !c.OwnKey {
		t.Errorf("without a key: %+v, %v", c, err)
	}

	// alter returns proof.json with one change made to its JSON object.
	alter := func(change func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	flip := func(b64 string, at int) string {
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		if at < 0 {
			at += len(b)
		}
		b[at] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	otherManifest := bytes.Replace(z.manifest, []byte("EVD-Z0005"), []byte("EVD-Z0006"), 1)
	otherVerifier, err := ledger.VerifierKey(otherKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		manifest []byte
		proof    []byte
		pub      ed25519.PublicKey
		want     string
	}{
		{"a leaf byte", z.manifest, alter(func(m map[string]any) { m["leaf"] = flip(m["leaf"].(string), 10) }), pub,
			"its leaf is not the leaf of manifest.json"},
		{"a proof hash", z.manifest, alter(func(m map[string]any) {
			h := m["record_proof"].([]any)
			h[0] = flip(h[0].(string), 0)
		}), pub, "is not in the signed tree"},
		{"the checkpoint signature", z.manifest, alter(func(m map[string]any) {
			cp := m["checkpoint"].(string)
			i := strings.LastIndex(cp, " ")
			m["checkpoint"] = cp[:i+1] + flip(strings.TrimSpace(cp[i+1:]), -1) + "\n"
		}), pub, "checkpoint"},
		{"the tree size", z.manifest, alter(func(m map[string]any) { m["tree_size"] = 7 }), pub, "not tree_size 7"},
		{"the index", z.manifest, alter(func(m map[string]any) { m["index"] = 4 }), pub, "entry 4 is not in the signed tree"},
		{"the origin", z.manifest, alter(func(m map[string]any) { m["origin"] = "runproof/ledger/other" }), pub, "origin \"runproof/ledger/other\""},
		{"another manifest", otherManifest, good, pub, "its leaf is not the leaf of manifest.json"},
		{"another key", z.manifest, good, otherKey.Public().(ed25519.PublicKey), "not the one of the key given"},
		{"another key, named in proof.json", z.manifest, alter(func(m map[string]any) { m["verifier_key"] = otherVerifier }),
			otherKey.Public().(ed25519.PublicKey), "not signed by a known key"},
		{"the manifest shown", z.manifest, alter(func(m map[string]any) { m["manifest"].(map[string]any)["bundle_id"] = "EVD-FAKE" }), pub,
			"the manifest entry it shows is not the leaf it proves"},
		{"no manifest shown", z.manifest, alter(func(m map[string]any) { delete(m, "manifest") }), pub,
			"does not show the manifest entry"},
		{"an entry shown", z.manifest, alter(func(m map[string]any) { m["entry"] = map[string]any{"export_id": "x"} }), pub,
			"holds an export entry"},
		{"not JSON", z.manifest, []byte("{"), pub, "not a ledger proof"},
		{"a member added", z.manifest, alter(func(m map[string]any) { m["auditor_comment"] = "all costs approved" }), pub,
			`unknown object member name "auditor_comment"`},
		{"a member named twice", z.manifest, bytes.Replace(good, []byte(`"origin":`), []byte(`"origin": "runproof/ledger/acme", "origin":`), 1), pub,
			`duplicate object member name "origin"`},
		{"a signature added to the checkpoint", z.manifest, alter(func(m map[string]any) {
			m["checkpoint"] = m["checkpoint"].(string) + "\u2014 approved-by-cfo " + base64.StdEncoding.EncodeToString(make([]byte, 68)) + "\n"
		}), pub, "bears a signature of a key it is not checked with"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ledger.CheckManifestProof(tc.manifest, tc.proof, tc.pub)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestManifestProofOwnKey: while servers move to a new signing key, one
// that still signs with the old key and one that signs with the new
// append to one log; a ZIP's proof.json is against a checkpoint its own
// server signed, so that the one key its manifest names checks it all.
func TestManifestProofOwnKey(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s runproof.Store) {
		ctx := context.Background()
		oldKey := newLedger(t, s)
		newer, err := ledger.New(s, otherKey, keyName, ledger.Options{Now: func() time.Time { return t0 },
			Verifiers: []string{oldKey.VerifierKey()}})
		if err != nil {
			t.Fatal(err)
		}
		z := sealZIP(t, s, oldKey, "acme", 1)
		if _, err := newer.AppendBatch(ctx, "acme", finish(t, s, "acme", 5, 2)); err != nil {
			t.Fatal(err)
		}
		p, err := oldKey.ProveManifest(ctx, "acme", z.rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if p.VerifierKey != oldKey.VerifierKey() {
			t.Errorf("proof.json's checkpoint is signed by %s, not by the key of the server that sealed the ZIP", p.VerifierKey)
		}
		if err := checkProof(p, oldKey.VerifierKey()); err != nil {
			t.Errorf("proof.json does not hold with the sealing server's key: %v", err)
		}
	})
}
