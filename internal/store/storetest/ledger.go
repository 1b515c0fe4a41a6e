package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// ledgerHash is a stand-in tree hash: the store keeps hashes, it never
// computes them.
func ledgerHash(s string) [runproof.LedgerHashSize]byte { return sha256.Sum256([]byte(s)) }

// Entry types of the stand-in entries: the store keeps the type, it never
// reads the leaf.
const (
	exportEntry   = "runproof.export.v1"
	manifestEntry = "runproof.manifest.v1"
)

// appendLedger appends one export entry per export id in one call, with
// one stored hash per entry (at the entry's index) and a checkpoint, and
// returns the indexes given.
func appendLedger(ctx context.Context, s runproof.Store, tenant string, exportIDs ...string) ([]int64, error) {
	return appendLedgerTyped(ctx, s, tenant, exportEntry, exportIDs...)
}

// appendLedgerTyped is appendLedger with entries of one type.
func appendLedgerTyped(ctx context.Context, s runproof.Store, tenant, entryType string, exportIDs ...string) ([]int64, error) {
	var got []int64
	err := s.AppendLedger(ctx, tenant, func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
		got = got[:0]
		if st.Latest != nil && st.Latest.Size != st.Size {
			return runproof.LedgerAppend{}, fmt.Errorf("latest checkpoint of size %d over %d entries", st.Latest.Size, st.Size)
		}
		if st.Size > 0 { // the previous append's hash is readable in the transaction
			h, err := st.ReadHashes([]int64{st.Size - 1})
			if err != nil {
				return runproof.LedgerAppend{}, err
			}
			if h[0] != ledgerHash(fmt.Sprint(tenant, st.Size-1)) {
				return runproof.LedgerAppend{}, fmt.Errorf("hash %d read back wrong", st.Size-1)
			}
		}
		var a runproof.LedgerAppend
		for i, id := range exportIDs {
			n := st.Size + int64(i)
			got = append(got, n)
			a.Entries = append(a.Entries, runproof.LedgerEntry{TenantID: tenant, Index: n, RecordID: id, Type: entryType,
				Data: []byte(`{"export_id":"` + id + `"}`), CreatedAt: at(int(n))})
			a.Hashes = append(a.Hashes, runproof.LedgerHash{Index: n, Hash: ledgerHash(fmt.Sprint(tenant, n))})
		}
		size := st.Size + int64(len(exportIDs))
		a.Checkpoint = runproof.LedgerCheckpoint{TenantID: tenant, Size: size, Hash: ledgerHash(fmt.Sprint("tree", size)),
			Note: []byte(fmt.Sprintf("tree %d\n", size)), VerifierKey: "test+00000000+AQ==", CreatedAt: at(int(size))}
		return a, nil
	})
	return got, err
}

func testLedger(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	_, err := s.LedgerCheckpoint(ctx, "t1", 0)
	wantCode(t, "latest checkpoint of an empty ledger", err, runproof.ENOTFOUND)
	if _, err := appendLedger(ctx, s, "t1", "x0"); err != nil {
		t.Fatal(err)
	}
	idx, err := appendLedger(ctx, s, "t1", "x1", "x2")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "indexes of the second append", idx, []int64{1, 2})
	if n, err := s.FirstRepeatedLedgerEntry(ctx, "t1"); err != nil || n != -1 {
		t.Fatalf("first repeated entry of a ledger without repeats: %d, %v; want -1", n, err)
	}
	if _, err := appendLedger(ctx, s, "t2", "x1"); err != nil {
		t.Fatalf("same export id in another tenant: %v", err)
	}

	entries, err := s.LedgerEntries(ctx, "t1", 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []runproof.LedgerEntry{
		{TenantID: "t1", Index: 1, RecordID: "x1", Type: exportEntry, Data: []byte(`{"export_id":"x1"}`), CreatedAt: at(1)},
		{TenantID: "t1", Index: 2, RecordID: "x2", Type: exportEntry, Data: []byte(`{"export_id":"x2"}`), CreatedAt: at(2)},
	}
	equal(t, "entries [1, 10)", entries, want)
	e, err := s.LedgerEntryByRecord(ctx, "t1", "x2", exportEntry)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "entry of x2", e, want[1])
	_, err = s.LedgerEntryByRecord(ctx, "t2", "x2", exportEntry)
	wantCode(t, "entry of another tenant's export", err, runproof.ENOTFOUND)
	_, err = s.LedgerEntryByRecord(ctx, "t1", "x2", manifestEntry)
	wantCode(t, "entry of another type", err, runproof.ENOTFOUND)

	hashes, err := s.LedgerHashes(ctx, "t1", []int64{2, 0})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "hashes 2, 0", hashes, [][runproof.LedgerHashSize]byte{ledgerHash("t12"), ledgerHash("t10")})
	_, err = s.LedgerHashes(ctx, "t1", []int64{1, 3})
	wantCode(t, "a hash not stored", err, runproof.ENOTFOUND)
	hashes, err = s.LedgerHashes(ctx, "t1", []int64{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "hashes 0 to 2", hashes, [][runproof.LedgerHashSize]byte{ledgerHash("t10"), ledgerHash("t11"), ledgerHash("t12")})
	_, err = s.LedgerHashes(ctx, "t1", []int64{2, 3})
	wantCode(t, "a run of hashes, the last not stored", err, runproof.ENOTFOUND)

	latest, err := s.LedgerCheckpoint(ctx, "t1", 0)
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := runproof.LedgerCheckpoint{TenantID: "t1", Size: 3, Hash: ledgerHash("tree3"),
		Note: []byte("tree 3\n"), VerifierKey: "test+00000000+AQ==", CreatedAt: at(3)}
	equal(t, "latest checkpoint", latest, wantLatest)
	first, err := s.LedgerCheckpoint(ctx, "t1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if first.Size != 1 || first.Hash != ledgerHash("tree1") {
		t.Errorf("checkpoint 1: got %+v", first)
	}
	_, err = s.LedgerCheckpoint(ctx, "t1", 2)
	wantCode(t, "a size without checkpoint", err, runproof.ENOTFOUND)
	cps, err := s.LedgerCheckpoints(ctx, "t1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps[0].Size != 1 || cps[1].Size != 3 {
		t.Errorf("checkpoints: got %+v, want sizes 1 and 3", cps)
	}
	cps, err = s.LedgerCheckpoints(ctx, "t1", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "checkpoints after 1, limit 1", cps, []runproof.LedgerCheckpoint{wantLatest})
	tenants, err := s.LedgerTenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "tenants", tenants, []string{"t1", "t2"})

	// An export is in the ledger once per entry type; a failed append
	// writes nothing.
	_, err = appendLedger(ctx, s, "t1", "x3", "x1")
	wantCode(t, "export already in the ledger", err, runproof.ECONFLICT)
	_, err = appendLedgerTyped(ctx, s, "t1", "", "x3")
	if err == nil {
		t.Error("an entry without a type was stored")
	}
	boom := errors.New("boom")
	err = s.AppendLedger(ctx, "t1", func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
		return runproof.LedgerAppend{}, boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("error of fn: got %v, want it returned as is", err)
	}
	if entries, _ := s.LedgerEntries(ctx, "t1", 0, 100); len(entries) != 3 {
		t.Errorf("after refused appends: %d entries, want 3", len(entries))
	}
	if latest, _ := s.LedgerCheckpoint(ctx, "t1", 0); latest.Size != 3 {
		t.Errorf("after refused appends: latest checkpoint %d, want 3", latest.Size)
	}

	// An entry of another type for the same export is a new entry.
	idx, err = appendLedgerTyped(ctx, s, "t1", manifestEntry, "x1")
	if err != nil {
		t.Fatalf("second entry type of an export: %v", err)
	}
	equal(t, "index of the manifest entry", idx, []int64{3})
	e, err = s.LedgerEntryByRecord(ctx, "t1", "x1", manifestEntry)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "manifest entry of x1", e, runproof.LedgerEntry{TenantID: "t1", Index: 3, RecordID: "x1", Type: manifestEntry,
		Data: []byte(`{"export_id":"x1"}`), CreatedAt: at(3)})
	if e, err := s.LedgerEntryByRecord(ctx, "t1", "x1", exportEntry); err != nil || e.Index != 1 {
		t.Errorf("export entry of x1 after its manifest entry: %+v, %v", e, err)
	}
	_, err = appendLedgerTyped(ctx, s, "t1", manifestEntry, "x1")
	wantCode(t, "manifest entry twice", err, runproof.ECONFLICT)
}

// testLedgerRecords reads ranges of entries with their export records:
// each folded with its events but for what no leaf holds, none for an
// entry without an export request, and none of another tenant.
func testLedgerRecords(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createExports(t, s, newExport("t1", "x1", at(0)), newExport("t1", "x2", at(1)), newExport("t1", "x3", at(2)),
		newExport("t2", "x1", at(3)))
	failed := runproof.ExportEvent{TenantID: "t1", ExportID: "x2", Kind: runproof.ExportEventFailed, At: at(6), Reason: "disk full"}
	delivered := runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventDelivered, At: at(8)}
	appendExportEvents(t, s, completedEvent("t1", "x1", at(4)), sealedEvent("t1", "x2", at(5)), failed,
		completedEvent("t2", "x1", at(7)), delivered)
	for _, step := range []struct {
		typ string
		ids []string
	}{{exportEntry, []string{"x1"}}, {manifestEntry, []string{"x2"}}, {exportEntry, []string{"x2", "ghost"}}} {
		if _, err := appendLedgerTyped(ctx, s, "t1", step.typ, step.ids...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := appendLedger(ctx, s, "t2", "x1"); err != nil {
		t.Fatal(err)
	}
	// record is entry i of t1 with the record of its export as leaves show it.
	record := func(i int64, typ, id string) runproof.LedgerRecord {
		r := runproof.LedgerRecord{LedgerEntry: runproof.LedgerEntry{TenantID: "t1", Index: i, RecordID: id, Type: typ,
			Data: []byte(`{"export_id":"` + id + `"}`)}}
		if id == "ghost" {
			return r
		}
		rec, err := s.GetExport(ctx, "t1", id)
		if err != nil {
			t.Fatal(err)
		}
		rec.DeliveredAt, rec.Artifact, rec.TotalSteps, rec.Remediation, rec.RemediationNotesDigest, rec.StepsOmitted = nil, "", nil, "", "", nil
		r.Export = &rec
		return r
	}
	all := []runproof.LedgerRecord{record(0, exportEntry, "x1"), record(1, manifestEntry, "x2"),
		record(2, exportEntry, "x2"), record(3, exportEntry, "ghost")}
	for _, c := range []struct {
		from, to int64
		want     []runproof.LedgerRecord
	}{
		{0, 4, all}, // x2 has two entries; "ghost" no record
		{1, 2, all[1:2]},
		{3, 10, all[3:]},
		{4, 10, nil},
	} {
		got, err := s.LedgerRecords(ctx, "t1", c.from, c.to)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, fmt.Sprintf("records of entries [%d, %d)", c.from, c.to), got, c.want)
	}
	got, err := s.LedgerRecords(ctx, "t2", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].TenantID != "t2" || got[0].Export == nil || got[0].Export.TenantID != "t2" ||
		got[0].Export.Status != runproof.ExportCompleted {
		t.Errorf("records of t2's entries: %s", show(got))
	}
	get := func(id string) runproof.Export {
		rec, err := s.GetExport(ctx, "t1", id)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}

	// Finished exports without an export entry: x4 (which has a manifest
	// entry) and x5, failed; x6 has not finished.
	createExports(t, s, newExport("t1", "x4", at(8)), newExport("t1", "x5", at(9)), newExport("t1", "x6", at(10)))
	appendExportEvents(t, s, sealedEvent("t1", "x4", at(9)), completedEvent("t1", "x4", at(11)),
		runproof.ExportEvent{TenantID: "t1", ExportID: "x5", Kind: runproof.ExportEventFailed, At: at(12), Reason: "disk full"},
		sealedEvent("t1", "x6", at(13)))
	if _, err := appendLedgerTyped(ctx, s, "t1", manifestEntry, "x4"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tenant string
		before time.Time
		want   []runproof.Export
	}{
		{"t1", time.Time{}, []runproof.Export{get("x4"), get("x5")}},
		{"t1", at(11), nil}, // x4 completed at 11: not before
		{"t1", at(12), []runproof.Export{get("x4")}},
		{"t1", at(13), []runproof.Export{get("x4"), get("x5")}},
		{"t2", time.Time{}, nil},
		{"t3", time.Time{}, nil},
	} {
		got, err := s.ExportsMissingFromLedger(ctx, c.tenant, c.before)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b runproof.Export) int { return strings.Compare(a.ID, b.ID) })
		equal(t, fmt.Sprintf("exports of %s missing from the ledger before %v", c.tenant, c.before), got, c.want)
	}

	// Unfinished: x3 (no event at all) and x6 (sealed only).
	for _, c := range []struct {
		tenant string
		before time.Time
		want   []runproof.Export
	}{
		{"t1", at(100), []runproof.Export{get("x3"), get("x6")}},
		{"t1", at(10), []runproof.Export{get("x3")}}, // x6 was created at 10
		{"t2", at(100), nil},
	} {
		got, err := s.UnfinishedExports(ctx, c.tenant, c.before, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(got, func(a, b runproof.Export) int { return strings.Compare(a.ID, b.ID) })
		equal(t, fmt.Sprintf("unfinished exports of %s created before %v", c.tenant, c.before), got, c.want)
	}

	// Sealed and completed without a manifest entry: x7 alone (x4 has its
	// entry, x6 has not completed, x1 was not sealed).
	createExports(t, s, newExport("t1", "x7", at(14)))
	appendExportEvents(t, s, sealedEvent("t1", "x7", at(15)), completedEvent("t1", "x7", at(16)))
	for tenant, want := range map[string][]runproof.Export{"t1": {get("x7")}, "t2": nil} {
		got, err := s.SealedExportsMissingFromLedger(ctx, tenant, manifestEntry)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "sealed exports of "+tenant+" missing from the ledger", got, want)
	}
	tenants, err := s.ExportTenants(ctx)
	if err != nil || !slices.Equal(tenants, []string{"t1", "t2"}) {
		t.Errorf("export tenants: %v, %v", tenants, err)
	}
}

// testLedgerConcurrent checks that appends to one log are serialised: each
// reads the size the previous one left, so no index is given twice.
func testLedgerConcurrent(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = appendLedger(ctx, s, "t1", fmt.Sprintf("x%d", i))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	entries, err := s.LedgerEntries(ctx, "t1", 0, n+1)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		if e.Index != int64(i) || seen[e.RecordID] {
			t.Fatalf("entry %d: index %d, export %s (seen before: %v)", i, e.Index, e.RecordID, seen[e.RecordID])
		}
		seen[e.RecordID] = true
	}
	if len(entries) != n {
		t.Fatalf("%d entries, want %d", len(entries), n)
	}
	cps, err := s.LedgerCheckpoints(ctx, "t1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != n || cps[n-1].Size != n {
		t.Errorf("%d checkpoints, the last of size %d; want %d", len(cps), cps[len(cps)-1].Size, n)
	}
}

func testLedgerAppendOnly(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	if _, err := appendLedger(ctx, s, "t1", "x0", "x1"); err != nil {
		t.Fatal(err)
	}
	dump := func() string {
		entries, err := s.LedgerEntries(ctx, "t1", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		hashes, err := s.LedgerHashes(ctx, "t1", []int64{0, 1})
		if err != nil {
			t.Fatal(err)
		}
		cps, err := s.LedgerCheckpoints(ctx, "t1", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		return show(entries) + show(hashes) + show(cps)
	}
	before := dump()
	for _, q := range []string{
		"UPDATE ledger_entries SET export_id = 'y' WHERE idx = 0",
		"UPDATE ledger_entries SET entry_type = 'runproof.manifest.v1' WHERE idx = 0",
		"UPDATE ledger_entries SET idx = idx + 10",
		"DELETE FROM ledger_entries WHERE idx = 1",
		"TRUNCATE ledger_entries",
		"UPDATE ledger_hashes SET hash = hash WHERE idx = 0",
		"DELETE FROM ledger_hashes",
		"TRUNCATE ledger_hashes",
		"UPDATE ledger_checkpoints SET note = note",
		"DELETE FROM ledger_checkpoints",
		"TRUNCATE ledger_checkpoints",
	} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
	if after := dump(); after != before {
		t.Errorf("data changed:\nbefore %s\n after %s", before, after)
	}
}

// testAuditSealing: audit events wait for their ledger entries, oldest
// first and tenant by tenant, until the append that holds their entries;
// the events of a range of entries read back; an event stored behind the
// store's back, neither sealed nor waiting, is found.
func testAuditSealing(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	e1 := newAuditEvent("t1", "e1", runproof.AuditAccess, at(2))
	e2 := newAuditEvent("t1", "e2", runproof.AuditWrite, at(1))
	e3 := newAuditEvent("t1", "e3", runproof.AuditAccess, at(3))
	e4 := newAuditEvent("t2", "e4", runproof.AuditAccess, at(1))
	if err := s.AppendAuditEvents(ctx, e1, e2, e3, e4); err != nil {
		t.Fatal(err)
	}
	tenants, err := s.AuditTenantsToSeal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "tenants to seal", tenants, []string{"t1", "t2"})
	waiting, err := s.AuditEventsToSeal(ctx, "t1", 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "the two oldest waiting", waiting, []runproof.AuditEvent{e2, e1})

	if _, err := appendLedgerTyped(ctx, s, "t1", runproof.AuditEntryType, "e2", "e1"); err != nil {
		t.Fatal(err)
	}
	if waiting, err = s.AuditEventsToSeal(ctx, "t1", 10); err != nil {
		t.Fatal(err)
	}
	equal(t, "waiting after the append", waiting, []runproof.AuditEvent{e3})
	sealed, err := s.LedgerAuditEvents(ctx, "t1", 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(sealed, func(a, b runproof.AuditEvent) int { return strings.Compare(a.ID, b.ID) })
	equal(t, "the events of entries [0, 2)", sealed, []runproof.AuditEvent{e1, e2})
	if sealed, err = s.LedgerAuditEvents(ctx, "t1", 1, 2); err != nil || len(sealed) != 1 || sealed[0].ID != "e1" {
		t.Errorf("the event of entry 1: %v, %v; want e1", sealed, err)
	}

	if _, err := appendLedgerTyped(ctx, s, "t1", runproof.AuditEntryType, "e3"); err != nil {
		t.Fatal(err)
	}
	if tenants, err = s.AuditTenantsToSeal(ctx); err != nil {
		t.Fatal(err)
	}
	equal(t, "tenants to seal once t1's are", tenants, []string{"t2"})
	if missing, err := s.AuditEventsMissingFromLedger(ctx, "t1", 10); err != nil || len(missing) != 0 {
		t.Errorf("events missing from a ledger that holds them all: %v, %v", missing, err)
	}

	// An event whose waiting row is removed behind the store's back.
	e5 := newAuditEvent("t1", "e5", runproof.AuditAccess, at(4))
	if err := s.AppendAuditEvents(ctx, e5); err != nil {
		t.Fatal(err)
	}
	if err := h.Exec(ctx, `DELETE FROM audit_unsealed WHERE tenant_id = 't1' AND id = 'e5'`); err != nil {
		t.Fatal(err)
	}
	missing, err := s.AuditEventsMissingFromLedger(ctx, "t1", 10)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "events neither sealed nor waiting", missing, []runproof.AuditEvent{e5})
}

// testStepsToSeal checks that runs with steps beyond those sealed are
// found, per tenant, and that a steps entry's append counts them sealed,
// never fewer than before.
func testStepsToSeal(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createRun(t, s, "t1", "r1", "a", at(1))
	createRun(t, s, "t1", "r2", "a", at(2)) // no steps
	createRun(t, s, "t2", "r1", "a", at(3))
	AppendSteps(t, s, "t1", "r1", newStep(t, "t1", "r1", 0), newStep(t, "t1", "r1", 1), newStep(t, "t1", "r1", 2))
	AppendSteps(t, s, "t2", "r1", newStep(t, "t2", "r1", 0))
	toSeal := func(tenant string, want ...runproof.RunSeal) {
		t.Helper()
		got, err := s.StepsToSeal(ctx, tenant, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "steps of "+tenant+" to seal", got, want)
	}
	tenants := func(want ...string) {
		t.Helper()
		got, err := s.StepsTenantsToSeal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "tenants with steps to seal", got, want)
	}
	toSeal("t1", runproof.RunSeal{RunID: "r1", Sealed: 0, Stored: 3})
	tenants("t1", "t2")

	seal := func(tenant string, r runproof.StepsRange) {
		t.Helper()
		if err := sealSteps(s, tenant, r); err != nil {
			t.Fatal(err)
		}
	}
	seal("t1", runproof.StepsRange{RunID: "r1", From: 0, To: 3})
	toSeal("t1")
	for _, q := range []string{"UPDATE run_seals SET sealed_steps = 1 WHERE run_id = 'r1'", "DELETE FROM run_seals"} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: allowed; how far a run is sealed only goes up", q)
		}
	}
	toSeal("t2", runproof.RunSeal{RunID: "r1", Sealed: 0, Stored: 1}) // another tenant's run of the same id
	tenants("t2")

	AppendSteps(t, s, "t1", "r1", newStep(t, "t1", "r1", 3))
	toSeal("t1", runproof.RunSeal{RunID: "r1", Sealed: 3, Stored: 4})
	seal("t1", runproof.StepsRange{RunID: "r1", From: 1, To: 2}) // an older range: what is sealed does not go down
	toSeal("t1", runproof.RunSeal{RunID: "r1", Sealed: 3, Stored: 4})

	// Paged by run id; every run with steps or seals, however far sealed.
	createRun(t, s, "t1", "r3", "a", at(4))
	AppendSteps(t, s, "t1", "r3", newStep(t, "t1", "r3", 0))
	if got, err := s.StepsToSeal(ctx, "t1", "r1", 10); err != nil || !slices.Equal(got, []runproof.RunSeal{{RunID: "r3", Sealed: 0, Stored: 1}}) {
		t.Errorf("steps of t1 to seal after r1: %v, %v", got, err)
	}
	seal("t1", runproof.StepsRange{RunID: "gone", From: 0, To: 2}) // a run no longer stored
	sealed := func(tenant, after string, limit int, want ...runproof.RunSeal) {
		t.Helper()
		got, err := s.StepsSealed(ctx, tenant, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, fmt.Sprintf("sealed steps of %s after %q", tenant, after), got, want)
	}
	sealed("t1", "", 10, runproof.RunSeal{RunID: "gone", Sealed: 2, Stored: 0}, runproof.RunSeal{RunID: "r1", Sealed: 3, Stored: 4},
		runproof.RunSeal{RunID: "r3", Sealed: 0, Stored: 1}) // r2 has no steps
	sealed("t1", "gone", 1, runproof.RunSeal{RunID: "r1", Sealed: 3, Stored: 4})
	sealed("t2", "", 10, runproof.RunSeal{RunID: "r1", Sealed: 0, Stored: 1})
}

// sealSteps appends a steps entry sealing r, as the ledger's sealer does
// (but with made-up hashes).
func sealSteps(s runproof.Store, tenant string, r runproof.StepsRange) error {
	return s.AppendLedger(context.Background(), tenant, func(st runproof.LedgerState) (runproof.LedgerAppend, error) {
		n := st.Size
		return runproof.LedgerAppend{
			Entries: []runproof.LedgerEntry{{TenantID: tenant, Index: n, RecordID: runproof.StepsRecordID(r.RunID, r.From),
				Type: runproof.StepsEntryType, Data: []byte(fmt.Sprint(r)), CreatedAt: at(int(n)), Seals: &r}},
			Hashes: []runproof.LedgerHash{{Index: n, Hash: ledgerHash(fmt.Sprint(tenant, n))}},
			Checkpoint: runproof.LedgerCheckpoint{TenantID: tenant, Size: n + 1, Hash: ledgerHash(fmt.Sprint("tree", n+1)),
				Note: []byte(fmt.Sprintf("tree %d\n", n+1)), VerifierKey: "test+00000000+AQ==", CreatedAt: at(int(n + 1))},
		}, nil
	})
}

// testStepsSealedWhileAdded seals runs while their steps come: a run
// sealed to its last step stops waiting for a seal, yet never misses the
// steps added while it was being sealed.
func testStepsSealedWhileAdded(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	runs := []string{"r1", "r2", "r3"}
	for i, id := range runs {
		createRun(t, s, "t1", id, "a", at(i))
	}
	const perRun = 40
	added := make(chan error, 1)
	go func() {
		for i := range int64(perRun) {
			for _, id := range runs {
				if err := appendSteps(s, "t1", id, newStep(t, "t1", id, i)); err != nil {
					added <- err
					return
				}
			}
		}
		added <- nil
	}()
	sealAll := func() error {
		waiting, err := s.StepsToSeal(ctx, "t1", "", len(runs))
		for _, w := range waiting {
			if err == nil {
				err = sealSteps(s, "t1", runproof.StepsRange{RunID: w.RunID, From: w.Sealed, To: w.Stored})
			}
		}
		return err
	}
	for done := false; !done; {
		select {
		case err := <-added:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		default:
		}
		if err := sealAll(); err != nil {
			t.Fatal(err)
		}
	}
	if err := sealAll(); err != nil { // the steps added since the last pass
		t.Fatal(err)
	}
	got, err := s.StepsSealed(ctx, "t1", "", len(runs))
	if err != nil {
		t.Fatal(err)
	}
	var want []runproof.RunSeal
	for _, id := range runs {
		want = append(want, runproof.RunSeal{RunID: id, Sealed: perRun, Stored: perRun})
	}
	equal(t, "runs sealed while their steps came", got, want)
}
