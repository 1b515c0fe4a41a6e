package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

func newExport(tenant, id string, created time.Time) runproof.ExportRequest {
	return runproof.ExportRequest{
		ID: id, TenantID: tenant, Scope: runproof.ScopeLLMRun, RunID: "r1",
		BundleType: runproof.BundleEvidence, Format: runproof.FormatZIP, RequestedBy: "user-1",
		Origin: runproof.OriginHuman, SourceComponent: "api", CreatedAt: created,
	}
}

func createExports(t *testing.T, s runproof.Store, reqs ...runproof.ExportRequest) {
	t.Helper()
	for _, r := range reqs {
		if err := s.CreateExport(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func appendExportEvents(t *testing.T, s runproof.Store, events ...runproof.ExportEvent) {
	t.Helper()
	for _, e := range events {
		if err := s.AppendExportEvent(context.Background(), e); err != nil {
			t.Fatalf("append %s event: %v", e.Kind, err)
		}
	}
}

func completedEvent(tenant, exportID string, when time.Time) runproof.ExportEvent {
	return runproof.ExportEvent{TenantID: tenant, ExportID: exportID, Kind: runproof.ExportEventCompleted,
		At: when, Checksum: "sha256:" + exportID, SizeBytes: 4096, BundleID: "bundle-" + exportID,
		Artifact: "artifacts/" + exportID + ".zip"}
}

func testExports(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	req := newExport("t1", "x1", at(0))
	req.IncidentID, req.CorrelationID, req.ExportReason = "inc-1", "corr-1", "quarterly review"
	req.Scope, req.BundleType, req.Format = runproof.ScopeCompliance, runproof.BundleSOC2, runproof.FormatPDF
	req.PeriodStart, req.PeriodEnd = ptr(at(-3600)), ptr(at(-1))
	// Every field is set, so that each is seen to be stored and read back:
	// a field added to the request fails here until it is.
	for f, v := range reflect.ValueOf(req).Fields() {
		if v.IsZero() {
			t.Fatalf("the export request of this test leaves %s unset: set it", f.Name)
		}
	}
	createExports(t, s, req)

	got, err := s.GetExport(ctx, "t1", "x1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "new export", got, runproof.Export{ExportRequest: req, Status: runproof.ExportPending})
	// The ledger reads the records it checks on its own.
	if _, err := appendLedger(ctx, s, "t1", "x1"); err != nil {
		t.Fatal(err)
	}
	recs, err := s.LedgerRecords(ctx, "t1", 0, 1)
	if err != nil || len(recs) != 1 || recs[0].Export == nil {
		t.Fatalf("ledger records: %s, %v", show(recs), err)
	}
	equal(t, "the export as the ledger reads it", recs[0].Export.ExportRequest, req)

	dup := newExport("t1", "x1", at(5))
	wantCode(t, "same export ID", s.CreateExport(ctx, dup), runproof.ECONFLICT)
	// Another tenant may use the same ID, and sees nothing of t1's.
	_, err = s.GetExport(ctx, "t2", "x1")
	wantCode(t, "export of another tenant", err, runproof.ENOTFOUND)
	_, err = s.GetExport(ctx, "t1", "nope")
	wantCode(t, "unknown export", err, runproof.ENOTFOUND)
	other := newExport("t2", "x1", at(9))
	createExports(t, s, other)
	if got, _ := s.GetExport(ctx, "t1", "x1"); !got.CreatedAt.Equal(req.CreatedAt) {
		t.Errorf("t1's export changed by t2's: %+v", got)
	}

	// Times come back in UTC, to the microsecond.
	zone := time.FixedZone("UTC-7", -7*3600)
	local := newExport("t1", "x2", time.Date(2025, 3, 1, 5, 0, 0, 123456789, zone))
	local.RunID, local.PeriodStart = "", ptr(time.Date(2025, 3, 1, 4, 0, 0, 999, zone))
	createExports(t, s, local)
	got, err = s.GetExport(ctx, "t1", "x2")
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC); got.CreatedAt != want {
		t.Errorf("created_at: got %#v, want %#v", got.CreatedAt, want)
	}
	if want := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC); got.PeriodStart == nil || *got.PeriodStart != want {
		t.Errorf("period_start: got %v, want %v", got.PeriodStart, want)
	}
	if got.PeriodEnd != nil || got.RunID != "" {
		t.Errorf("absent period_end and run_id: got %v and %q", got.PeriodEnd, got.RunID)
	}
}

func testExportEvents(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createExports(t, s, newExport("t1", "ok", at(0)), newExport("t1", "bad", at(1)), newExport("t2", "ok", at(2)))
	get := func(tenant, id string) runproof.Export {
		t.Helper()
		e, err := s.GetExport(ctx, tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}

	// Delivered before completed: the fold does not depend on the order.
	delivered := runproof.ExportEvent{TenantID: "t1", ExportID: "ok", Kind: runproof.ExportEventDelivered,
		At: at(20).Add(time.Nanosecond)}
	completed := completedEvent("t1", "ok", at(10))
	completed.Steps, completed.Remediation, completed.StepsOmitted = ptr(int64(7)), "in_progress", ptr(int64(7))
	completed.RemediationNotesDigest = runproof.DigestBytes([]byte("cap lowered"))
	appendExportEvents(t, s, delivered, completed)
	want := runproof.Export{ExportRequest: newExport("t1", "ok", at(0)), Status: runproof.ExportCompleted,
		Checksum: completed.Checksum, DeliveredAt: ptr(at(20)), CompletedAt: ptr(at(10)),
		BundleID: completed.BundleID, SizeBytes: completed.SizeBytes, Artifact: completed.Artifact, TotalSteps: ptr(int64(7)), Remediation: "in_progress",
		RemediationNotesDigest: completed.RemediationNotesDigest, StepsOmitted: ptr(int64(7))}
	equal(t, "completed and delivered export", get("t1", "ok"), want)

	// Delivery is recorded once; an export ends once.
	again := delivered
	again.At = at(30)
	wantCode(t, "second delivered", s.AppendExportEvent(ctx, again), runproof.ECONFLICT)
	wantCode(t, "completed twice", s.AppendExportEvent(ctx, completedEvent("t1", "ok", at(31))), runproof.ECONFLICT)
	failed := runproof.ExportEvent{TenantID: "t1", ExportID: "ok", Kind: runproof.ExportEventFailed, At: at(32), Reason: "disk full"}
	wantCode(t, "failed after completed", s.AppendExportEvent(ctx, failed), runproof.ECONFLICT)
	archived := delivered
	archived.Kind = "archived"
	wantCode(t, "event of an unknown kind", s.AppendExportEvent(ctx, archived), runproof.EINVALID)
	equal(t, "export after refused events", get("t1", "ok"), want)

	failed.ExportID = "bad"
	appendExportEvents(t, s, failed)
	wantCode(t, "completed after failed", s.AppendExportEvent(ctx, completedEvent("t1", "bad", at(33))), runproof.ECONFLICT)
	equal(t, "failed export", get("t1", "bad"), runproof.Export{ExportRequest: newExport("t1", "bad", at(1)),
		Status: runproof.ExportFailed, CompletedAt: ptr(at(32)), FailureReason: "disk full"})

	// Events of exports the tenant does not have.
	wantCode(t, "event of a missing export", s.AppendExportEvent(ctx, completedEvent("t1", "nope", at(40))), runproof.ENOTFOUND)
	wantCode(t, "event of another tenant's export", s.AppendExportEvent(ctx, completedEvent("t2", "bad", at(40))), runproof.ENOTFOUND)
	unknown := completedEvent("t2", "ok", at(40))
	unknown.Kind = "archived"
	wantCode(t, "unknown event kind", s.AppendExportEvent(ctx, unknown), runproof.EINVALID)
	equal(t, "t2's export", get("t2", "ok"), runproof.Export{ExportRequest: newExport("t2", "ok", at(2)), Status: runproof.ExportPending})

	// A ZIP export is sealed before it ends, once; one that fails after
	// keeps the id of the bundle it sealed.
	createExports(t, s, newExport("t1", "zip", at(3)), newExport("t1", "zipfail", at(4)))
	sealed := sealedEvent("t1", "zip", at(5))
	appendExportEvents(t, s, sealed)
	pending := runproof.Export{ExportRequest: newExport("t1", "zip", at(3)), Status: runproof.ExportPending,
		BundleID: sealed.BundleID, ManifestSHA256: sealed.ManifestSHA256, KeyID: sealed.KeyID, SealedAt: ptr(at(5))}
	equal(t, "sealed export", get("t1", "zip"), pending)
	again = sealedEvent("t1", "zip", at(6))
	wantCode(t, "sealed twice", s.AppendExportEvent(ctx, again), runproof.ECONFLICT)
	completed = completedEvent("t1", "zip", at(7))
	completed.BundleID = sealed.BundleID
	appendExportEvents(t, s, completed)
	done := pending
	done.Status, done.CompletedAt, done.Checksum, done.SizeBytes, done.Artifact = runproof.ExportCompleted, ptr(at(7)),
		completed.Checksum, completed.SizeBytes, completed.Artifact
	equal(t, "sealed and completed export", get("t1", "zip"), done)
	appendExportEvents(t, s, sealedEvent("t1", "zipfail", at(8)),
		runproof.ExportEvent{TenantID: "t1", ExportID: "zipfail", Kind: runproof.ExportEventFailed, At: at(9), Reason: "disk full"})
	if got := get("t1", "zipfail"); got.Status != runproof.ExportFailed || got.BundleID != "bundle-zipfail" ||
		got.ManifestSHA256 != sealedEvent("t1", "zipfail", at(8)).ManifestSHA256 || got.Checksum != "" {
		t.Errorf("export failed after sealing: %s", show(got))
	}
	// Sealed after its end (by a process that stalled past its lease while
	// another recorded the export failed): refused, the record unchanged.
	createExports(t, s, newExport("t1", "stalled", at(10)))
	appendExportEvents(t, s, runproof.ExportEvent{TenantID: "t1", ExportID: "stalled", Kind: runproof.ExportEventFailed, At: at(11), Reason: "interrupted"})
	ended := get("t1", "stalled")
	wantCode(t, "sealed after its end", s.AppendExportEvent(ctx, sealedEvent("t1", "stalled", at(12))), runproof.ECONFLICT)
	equal(t, "export sealed after its end", get("t1", "stalled"), ended)
}

// testExportTenantsFinishedSince: the tenants whose exports ended since a
// position, each once, in byte order; the position moves past them, and
// events that end nothing (sealed, delivered) do not count.
func testExportTenantsFinishedSince(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	since := func(pos int64) ([]string, int64) {
		t.Helper()
		tenants, next, err := s.ExportTenantsFinishedSince(ctx, pos)
		if err != nil {
			t.Fatal(err)
		}
		return tenants, next
	}
	if tenants, next := since(0); len(tenants) != 0 || next != 0 {
		t.Fatalf("no exports: %v, %d", tenants, next)
	}
	createExports(t, s, newExport("t2", "a", at(0)), newExport("t1", "b", at(1)), newExport("t1", "c", at(2)), newExport("t3", "d", at(3)))
	appendExportEvents(t, s, completedEvent("t2", "a", at(4)), completedEvent("t1", "b", at(5)),
		runproof.ExportEvent{TenantID: "t1", ExportID: "c", Kind: runproof.ExportEventFailed, At: at(6), Reason: "disk full"},
		sealedEvent("t3", "d", at(7)))
	tenants, next := since(0)
	equal(t, "tenants with exports ended", tenants, []string{"t1", "t2"})
	if again, after := since(next); len(again) != 0 || after != next {
		t.Errorf("since the position given: %v, %d; want none, %d", again, after, next)
	}
	appendExportEvents(t, s, completedEvent("t3", "d", at(8)))
	tenants, later := since(next)
	equal(t, "tenants with exports ended since", tenants, []string{"t3"})
	if later <= next {
		t.Errorf("the position did not move: %d after %d", later, next)
	}
}

func sealedEvent(tenant, exportID string, when time.Time) runproof.ExportEvent {
	return runproof.ExportEvent{TenantID: tenant, ExportID: exportID, Kind: runproof.ExportEventSealed, At: when,
		BundleID: "bundle-" + exportID, ManifestSHA256: "sha256:manifest-" + exportID, KeyID: "ed25519:0123456789abcdef"}
}

// testExportEventsConcurrent races completed and failed events, and repeated
// deliveries, on one export: exactly one of each kind of outcome wins.
func testExportEventsConcurrent(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createExports(t, s, newExport("t1", "x1", at(0)))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2*n)
	for i := range n {
		wg.Go(func() {
			ev := completedEvent("t1", "x1", at(i))
			if i%2 == 1 {
				ev = runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventFailed, At: at(i), Reason: "r"}
			}
			errs[i] = s.AppendExportEvent(ctx, ev)
		})
		wg.Go(func() {
			errs[n+i] = s.AppendExportEvent(ctx, runproof.ExportEvent{TenantID: "t1", ExportID: "x1",
				Kind: runproof.ExportEventDelivered, At: at(i)})
		})
	}
	wg.Wait()
	for _, part := range [][]error{errs[:n], errs[n:]} {
		ok := 0
		for _, err := range part {
			switch code := runproof.ErrorCode(err); code {
			case "":
				ok++
			case runproof.ECONFLICT:
			default:
				t.Errorf("concurrent append: %v", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d concurrent appends succeeded, want 1", ok, n)
		}
	}
	got, err := s.GetExport(ctx, "t1", "x1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status == runproof.ExportPending || got.DeliveredAt == nil {
		t.Errorf("after the race: status %s, delivered_at %v", got.Status, got.DeliveredAt)
	}
}

func testListExports(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	// x3 and x4 are created at the same time, so the ID orders them.
	x1 := newExport("t1", "x1", at(10))
	x2 := newExport("t1", "x2", at(20))
	x2.RunID, x2.IncidentID, x2.Scope = "r2", "inc-1", runproof.ScopeAudit
	x3 := newExport("t1", "x3", at(30))
	x4 := newExport("t1", "x4", at(30))
	x4.RunID, x4.IncidentID = "", "inc-1"
	x5 := newExport("t1", "x5", at(40))
	createExports(t, s, x3, x1, x5, x2, x4, newExport("t2", "y1", at(25)))
	appendExportEvents(t, s,
		completedEvent("t1", "x1", at(11)),
		runproof.ExportEvent{TenantID: "t1", ExportID: "x3", Kind: runproof.ExportEventFailed, At: at(31), Reason: "timeout"},
		runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventDelivered, At: at(12)},
		completedEvent("t1", "x5", at(41)),
		completedEvent("t2", "y1", at(26)),
	)
	fold := func(r runproof.ExportRequest) runproof.Export {
		e, err := s.GetExport(ctx, r.TenantID, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e1, e2, e3, e4, e5 := fold(x1), fold(x2), fold(x3), fold(x4), fold(x5)
	if e1.Status != runproof.ExportCompleted || e1.DeliveredAt == nil || e3.Status != runproof.ExportFailed {
		t.Fatalf("fixture exports not folded as expected: %s %s", show(e1), show(e3))
	}

	tests := []struct {
		name string
		p    runproof.ListExportsParams
		want []runproof.Export
	}{
		{"all", runproof.ListExportsParams{}, []runproof.Export{e5, e4, e3, e2, e1}},
		{"run", runproof.ListExportsParams{RunID: "r1"}, []runproof.Export{e5, e3, e1}},
		{"incident", runproof.ListExportsParams{IncidentID: "inc-1"}, []runproof.Export{e4, e2}},
		{"run and incident", runproof.ListExportsParams{RunID: "r2", IncidentID: "inc-1"}, []runproof.Export{e2}},
		{"limit", runproof.ListExportsParams{Limit: 2}, []runproof.Export{e5, e4}},
		{"limit offset", runproof.ListExportsParams{Limit: 2, Offset: 2}, []runproof.Export{e3, e2}},
		{"offset", runproof.ListExportsParams{Offset: 4}, []runproof.Export{e1}},
		{"from to", runproof.ListExportsParams{From: at(20), To: at(40)}, []runproof.Export{e4, e3, e2}},
		{"to, paged", runproof.ListExportsParams{To: at(40), Limit: 2, Offset: 2}, []runproof.Export{e2, e1}},
		{"past the end", runproof.ListExportsParams{Offset: 5}, nil},
		{"none", runproof.ListExportsParams{RunID: "r9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.p.TenantID = "t1"
			got, err := s.ListExports(ctx, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "exports", got, tt.want)
		})
	}
	got, err := s.ListExports(ctx, runproof.ListExportsParams{TenantID: "t3"})
	if err != nil || len(got) != 0 {
		t.Errorf("tenant without exports: got %v, %v", got, err)
	}
}

// testExportsAppendOnly tries, behind the store's back, to change exports
// and their events.
func testExportsAppendOnly(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createExports(t, s, newExport("t1", "x1", at(0)), newExport("t1", "x2", at(1)))
	appendExportEvents(t, s, completedEvent("t1", "x1", at(2)),
		runproof.ExportEvent{TenantID: "t1", ExportID: "x1", Kind: runproof.ExportEventDelivered, At: at(3)})
	dump := func() string {
		exports, err := s.ListExports(ctx, runproof.ListExportsParams{TenantID: "t1"})
		if err != nil {
			t.Fatal(err)
		}
		return show(exports)
	}
	before := dump()
	for _, q := range []string{
		"UPDATE exports SET requested_by = 'x'",
		"DELETE FROM exports",
		"TRUNCATE exports",         // refused on PostgreSQL by the foreign key ...
		"TRUNCATE exports CASCADE", // ... and by the triggers
		"UPDATE export_events SET kind = 'failed', reason = 'x'",
		"UPDATE export_events SET checksum = 'sha256:00' WHERE kind = 'completed'",
		"DELETE FROM export_events",
		"DELETE FROM export_events WHERE kind = 'delivered'",
		"TRUNCATE export_events",
		// The schema itself refuses what the store never writes.
		"INSERT INTO export_events (tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason) " +
			"VALUES ('t1', 'x1', 'failed', '2025-03-01T12:00:09.000000Z', '', 0, '', '', 'late')",
		"INSERT INTO export_events (tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason) " +
			"VALUES ('t1', 'x2', 'archived', '2025-03-01T12:00:09.000000Z', '', 0, '', '', '')",
	} {
		if err := h.Exec(ctx, q); err == nil {
			t.Errorf("%s: succeeded, want refused", q)
		}
	}
	if after := dump(); after != before {
		t.Errorf("data changed:\nbefore %s\n after %s", before, after)
	}
}

// testExportLeases checks that an unfinished export whose lease ran out
// is found as early as one created long ago, that a lease is renewed in
// place, and that leases are a tenant's own.
func testExportLeases(t *testing.T, h Harness) {
	ctx, s := context.Background(), h.Store
	createExports(t, s, newExport("t1", "a", at(10)), newExport("t1", "b", at(10)), newExport("t1", "old", at(1)),
		newExport("t2", "a", at(10)))
	appendExportEvents(t, s, runproof.ExportEvent{TenantID: "t1", ExportID: "b", Kind: runproof.ExportEventFailed, At: at(11), Reason: "disk full"})
	lease := func(tenant, id string, until time.Time) {
		t.Helper()
		if err := s.LeaseExport(ctx, tenant, id, until); err != nil {
			t.Fatal(err)
		}
	}
	unfinished := func(tenant string, createdBefore, leaseBefore time.Time, want ...string) {
		t.Helper()
		got, err := s.UnfinishedExports(ctx, tenant, createdBefore, leaseBefore)
		if err != nil {
			t.Fatal(err)
		}
		ids := []string{}
		for _, e := range got {
			ids = append(ids, e.ID)
			if e.TenantID != tenant {
				t.Errorf("unfinished exports of %s: %s is %s's", tenant, e.ID, e.TenantID)
			}
		}
		slices.Sort(ids)
		equal(t, fmt.Sprintf("unfinished exports of %s created before %v or leased until before %v", tenant, createdBefore, leaseBefore),
			ids, append([]string{}, want...))
	}
	lease("t1", "a", at(20))
	lease("t1", "b", at(20)) // failed: never unfinished
	lease("t1", "a", at(30)) // renewed
	lease("t2", "a", at(15))
	unfinished("t1", at(0), at(30))
	unfinished("t1", at(0), at(31), "a")
	unfinished("t1", at(5), at(31), "a", "old")
	unfinished("t1", at(5), time.Time{}, "old")
	unfinished("t2", at(0), at(16), "a")

	if err := s.DropExportLeases(ctx, "t1", at(31)); err != nil {
		t.Fatal(err)
	}
	unfinished("t1", at(0), at(100))
	unfinished("t2", at(0), at(16), "a") // another tenant's lease stays
	if err := s.DropExportLeases(ctx, "t2", at(15)); err != nil {
		t.Fatal(err)
	}
	unfinished("t2", at(0), at(16), "a") // it runs out at 15: not before
	if err := s.DropExportLeases(ctx, "t2", at(16)); err != nil {
		t.Fatal(err)
	}
	unfinished("t2", at(0), at(100))
}
