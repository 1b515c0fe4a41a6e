package export_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/bundlezip"
	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// ledgered is an exporter that signs ZIPs and records exports in a
// ledger signed with the same key, as `runproof serve` sets them up.
type ledgered struct {
	exporter *export.Exporter
	ledger   *ledger.Ledger
	key      signing.Key
	store    runproof.Store
}

// verify checks a tenant's ledger with the ledger's key.
func (lx ledgered) verify(ctx context.Context, tenant string) error {
	_, err := ledger.Verify(ctx, lx.store, ledger.VerifyParams{TenantID: tenant, VerifierKeys: lx.ledger.VerifierKeys()})
	return err
}

func newLedgered(t *testing.T, store runproof.Store, arts export.Artifacts) ledgered {
	t.Helper()
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := keys.Active()
	l, err := ledger.New(store, key.Private, key.ID, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if arts == nil {
		if arts, err = artifact.NewDir(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	}
	return ledgered{exporter: export.New(store, arts, export.Options{Keys: keys, Ledger: l, NewID: ids(2),
		Now: func() time.Time { return fixed }}), ledger: l, key: key, store: store}
}

// unzip returns the members of a ZIP in order.
func unzip(t *testing.T, b []byte) (names []string, files map[string][]byte) {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	files = map[string][]byte{}
	for _, f := range zr.File {
		// Every member is dated by the export, to the two seconds of a
		// ZIP's MS-DOS time.
		if at := fixed.Truncate(2 * time.Second); !f.Modified.Equal(at) {
			t.Errorf("%s is dated %v, want the export's %v", f.Name, f.Modified, at)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
		files[f.Name] = data
	}
	return names, files
}

// TestZIPProof exports ZIPs through an exporter with a ledger, on both
// engines: each carries the proof of its sealed manifest, which checks
// against manifest.json and the public key alone, and the ledger holds
// both of its leaves and verifies.
func TestZIPProof(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		lx := newLedgered(t, store, nil)
		if _, err := lx.exporter.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatJSON}); err != nil {
			t.Fatal(err)
		}
		for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleExecutiveDebrief} {
			rec, err := lx.exporter.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, BundleType: bundle,
				Format: runproof.FormatZIP})
			if err != nil {
				t.Fatal(err)
			}
			got := download(t, lx.exporter, rec)
			names, files := unzip(t, got)
			want := []string{bundlezip.ManifestName, bundlezip.SignatureName, bundlezip.SumsName, bundlezip.BundleName,
				bundlezip.StepsName, bundlezip.ReportName, bundlezip.ProofName}
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Fatalf("%s: members %v, want %v", bundle, names, want)
			}
			manifest, proof := files[bundlezip.ManifestName], files[bundlezip.ProofName]
			if !ed25519.Verify(lx.key.Public(), manifest, files[bundlezip.SignatureName]) {
				t.Errorf("%s: manifest.sig does not verify", bundle)
			}
			if sums := string(files[bundlezip.SumsName]); !strings.Contains(sums, strings.TrimPrefix(runproof.DigestBytes(proof), "sha256:")+"  proof.json\n") {
				t.Errorf("%s: SHA256SUMS does not list proof.json:\n%s", bundle, sums)
			}
			var m bundlezip.Manifest
			if err := json.Unmarshal(manifest, &m); err != nil || m.BundleType != bundle || m.BundleID != rec.BundleID {
				t.Errorf("%s: manifest %+v, %v", bundle, m, err)
			}
			if rec.ManifestSHA256 != runproof.DigestBytes(manifest) || rec.KeyID != lx.key.ID || rec.SealedAt == nil {
				t.Errorf("%s: record %+v", bundle, rec)
			}

			c, err := ledger.CheckManifestProof(manifest, proof, lx.key.Public())
			if err != nil {
				t.Fatalf("%s: proof.json: %v", bundle, err)
			}
			// The manifest leaf comes first, the export's outcome (with the
			// ZIP's digest) right after.
			p, err := lx.ledger.Prove(ctx, demo.Tenant, rec.ID)
			if err != nil {
				t.Fatal(err)
			}
			if p.Index != c.Index+1 || p.Entry.Checksum != runproof.DigestBytes(got) || p.Entry.BundleID != rec.BundleID {
				t.Errorf("%s: export leaf %d %+v, manifest leaf %d", bundle, p.Index, p.Entry, c.Index)
			}
		}
		if err := lx.verify(ctx, demo.Tenant); err != nil {
			t.Errorf("ledger verify: %v", err)
		}
		rep, err := ledger.Verify(ctx, store, ledger.VerifyParams{TenantID: demo.Tenant, VerifierKeys: []string{lx.ledger.VerifierKey()},
			FinishedBefore: fixed.Add(time.Hour)})
		if err != nil || rep.Entries != 5 {
			t.Errorf("ledger verify of every export: %+v, %v", rep, err)
		}
	})
}

// TestZIPWithoutLedger: an exporter without a ledger writes no proof.json
// and seals nothing.
func TestZIPWithoutLedger(t *testing.T) {
	store := storetest.OpenSQLite(t)
	inc := seeded(t, store)
	keys, err := signing.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := export.New(store, dir, export.Options{Keys: keys, NewID: ids(2), Now: func() time.Time { return fixed }})
	rec, err := e.Export(context.Background(), demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatZIP})
	if err != nil {
		t.Fatal(err)
	}
	names, files := unzip(t, download(t, e, rec))
	if len(names) != 6 || files[bundlezip.ProofName] != nil || strings.Contains(string(files[bundlezip.SumsName]), "proof.json") {
		t.Errorf("members %v, SHA256SUMS:\n%s", names, files[bundlezip.SumsName])
	}
	if rec.ManifestSHA256 != "" || rec.SealedAt != nil {
		t.Errorf("record %+v", rec)
	}
}

// TestZIPFailsAfterSealing: a ZIP whose write fails after its manifest was
// sealed leaves a failed export, and both its leaves stay in a ledger
// that verifies: the manifest was sealed, the export failed.
func TestZIPFailsAfterSealing(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		inc := seeded(t, store)
		dir, err := artifact.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		lx := newLedgered(t, store, failingArtifacts{Dir: dir, limit: 100})
		rec, err := lx.exporter.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatZIP})
		var failed *export.Failed
		if !errors.As(err, &failed) || !errors.Is(err, errDiskFull) {
			t.Fatalf("error %v, want a failed export", err)
		}
		if rec.Status != runproof.ExportFailed || rec.ManifestSHA256 == "" || rec.BundleID == "" || rec.Checksum != "" {
			t.Fatalf("record %+v", rec)
		}
		mp, err := lx.ledger.ProveManifest(ctx, demo.Tenant, rec.ID)
		if err != nil || mp.Index != 0 || mp.Manifest.ManifestSHA256 != rec.ManifestSHA256 {
			t.Fatalf("manifest proof %+v, %v", mp, err)
		}
		p, err := lx.ledger.Prove(ctx, demo.Tenant, rec.ID)
		if err != nil || p.Index != 1 || p.Entry.Status != "failed" || p.Entry.BundleID != rec.BundleID {
			t.Fatalf("export proof %+v, %v", p, err)
		}
		if _, err := ledger.Verify(ctx, store, ledger.VerifyParams{TenantID: demo.Tenant, VerifierKeys: []string{lx.ledger.VerifierKey()},
			FinishedBefore: fixed.Add(time.Hour)}); err != nil {
			t.Errorf("ledger verify: %v", err)
		}
	})
}

// TestZIPProofOutlivesForgery plays someone who changes an export made
// before a ZIP and rewrites the ledger from there, signing with a key of
// their own: the ZIP made before the edit still verifies against its own
// checkpoint, while a consistency check from that checkpoint to the new
// head fails, and so does ledger verify against it.
func TestZIPProofOutlivesForgery(t *testing.T) {
	harnesses := map[string]func(*testing.T) storetest.Harness{"sqlite": storetest.SQLiteHarness, "postgres": storetest.PostgresHarness}
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			h := harnesses[engine](t)
			ctx := context.Background()
			inc := seeded(t, h.Store)
			lx := newLedgered(t, h.Store, nil)
			exp := func(f runproof.ExportFormat) runproof.Export {
				rec, err := lx.exporter.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: f})
				if err != nil {
					t.Fatal(err)
				}
				return rec
			}
			first := exp(runproof.FormatJSON) // entry 0
			exp(runproof.FormatCSV)           // entry 1
			zipRec := exp(runproof.FormatZIP) // entries 2 (sealed manifest) and 3
			exp(runproof.FormatJSON)          // entry 4
			_, files := unzip(t, download(t, lx.exporter, zipRec))
			manifest, proof := files[bundlezip.ManifestName], files[bundlezip.ProofName]
			var held ledger.Proof
			if err := json.Unmarshal(proof, &held); err != nil {
				t.Fatal(err)
			}
			if held.Index != 2 || held.TreeSize != 3 {
				t.Fatalf("proof.json: index %d of %d entries, want 2 of 3", held.Index, held.TreeSize)
			}

			// Change the first export's record and rewrite the ledger from
			// there with another key.
			var qs []string
			for _, table := range []string{"export_events", "ledger_entries", "ledger_hashes", "ledger_checkpoints"} {
				if engine == "sqlite" {
					qs = append(qs, "DROP TRIGGER "+table+"_no_update", "DROP TRIGGER "+table+"_no_delete")
				} else {
					qs = append(qs, "DROP TRIGGER "+table+"_append_only ON "+table)
				}
			}
			for _, q := range append(qs,
				fmt.Sprintf("UPDATE export_events SET checksum = '%s' WHERE export_id = '%s'", runproof.DigestBytes([]byte("forged")), first.ID),
				"DELETE FROM ledger_entries", "DELETE FROM ledger_hashes", "DELETE FROM ledger_checkpoints") {
				if err := h.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			_, otherKey, _ := ed25519.GenerateKey(nil)
			forger, err := ledger.New(h.Store, otherKey, "forger", ledger.Options{})
			if err != nil {
				t.Fatal(err)
			}
			recs, err := h.Store.ListExports(ctx, runproof.ListExportsParams{TenantID: demo.Tenant})
			if err != nil {
				t.Fatal(err)
			}
			for i := len(recs) - 1; i >= 0; i-- { // oldest first
				if recs[i].ManifestSHA256 != "" {
					if _, err := forger.AppendManifest(ctx, recs[i]); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := forger.Append(ctx, recs[i]); err != nil {
					t.Fatal(err)
				}
			}

			// The ZIP's proof holds against its own checkpoint.
			if _, err := ledger.CheckManifestProof(manifest, proof, lx.key.Public()); err != nil {
				t.Errorf("the ZIP made before the edit: %v", err)
			}
			// The new head is not consistent with it.
			c, err := forger.ProveConsistency(ctx, demo.Tenant, held.TreeSize, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, newTree, err := ledger.OpenCheckpoint([]byte(c.NewCheckpoint), forger.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(c.TreeProof, newTree.N, newTree.Hash, held.TreeSize, held.TreeHash); err == nil {
				t.Error("the forged head is consistent with the ZIP's checkpoint")
			}
			_, err = ledger.Verify(ctx, h.Store, ledger.VerifyParams{TenantID: demo.Tenant, Checkpoint: []byte(held.Checkpoint),
				VerifierKeys: []string{forger.VerifierKey(), lx.ledger.VerifierKey()}})
			var m *ledger.Mismatch
			if !errors.As(err, &m) || !strings.Contains(err.Error(), "does not extend the given checkpoint of size 3") {
				t.Errorf("ledger verify against the ZIP's checkpoint: %v", err)
			}
			// With the published key alone, the first forged checkpoint is named.
			err = lx.verify(ctx, demo.Tenant)
			if !errors.As(err, &m) || m.Index != 0 {
				t.Errorf("ledger verify with the published key: %v", err)
			}
		})
	}
}

// TestSealedAfterItsEnd: a ZIP export whose end another process recorded
// (this one stalled past its lease, and the other recorded it failed)
// before it sealed its manifest is refused the seal and fails, its record
// stays as the ledger holds it, and the ledger verifies.
func TestSealedAfterItsEnd(t *testing.T) {
	ctx := context.Background()
	store := storetest.OpenSQLite(t)
	inc := seeded(t, store)
	dir, root := tempArtifacts(t)
	arts := newBlocking(dir)
	lx := newLedgered(t, store, arts)
	done := make(chan error, 1)
	go func() {
		_, err := lx.exporter.Export(ctx, demo.Tenant, auditor, export.Input{IncidentID: inc.ID, Format: runproof.FormatZIP})
		done <- err
	}()
	<-arts.entered // recorded and leased, not sealed yet
	recs, err := store.ListExports(ctx, runproof.ListExportsParams{TenantID: demo.Tenant, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: demo.Tenant, ExportID: recs[0].ID, Kind: runproof.ExportEventFailed,
		At: fixed, Reason: "interrupted: the process making it stopped before it was done; ask for it again"}); err != nil {
		t.Fatal(err)
	}
	if _, err := lx.ledger.Sync(ctx, demo.Tenant); err != nil { // as Recover appends it
		t.Fatal(err)
	}
	close(arts.release)
	if err := <-done; err == nil {
		t.Fatal("the export ended as completed after it was recorded failed")
	}
	rec, err := store.GetExport(ctx, demo.Tenant, recs[0].ID)
	if err != nil || rec.Status != runproof.ExportFailed || rec.BundleID != "" || rec.ManifestSHA256 != "" {
		t.Errorf("record %+v, %v; want failed, never sealed", rec, err)
	}
	if err := lx.verify(ctx, demo.Tenant); err != nil {
		t.Errorf("ledger verify: %v", err)
	}
	if files := filesUnder(t, root); len(files) != 0 {
		t.Errorf("the export left files: %v", files)
	}
}
