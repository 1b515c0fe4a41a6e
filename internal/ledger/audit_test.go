package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
)

// auditAt stores n audit events of tenant, one a second from start.
func auditAt(t *testing.T, s runproof.Store, tenant string, start time.Time, n int) []runproof.AuditEvent {
	t.Helper()
	events := make([]runproof.AuditEvent, n)
	for i := range events {
		events[i] = runproof.AuditEvent{ID: runproof.NewID(), TenantID: tenant, OccurredAt: runproof.Timestamp(start.Add(time.Duration(i) * time.Second)),
			Actor: "key-1", ActorType: runproof.OriginHuman, Category: runproof.AuditAccess, Action: "GET /api/v1/runs",
			Resource: "runs", Decision: runproof.DecisionAllow, Status: 200, CorrelationID: fmt.Sprint("c", i), SourceComponent: "api"}
	}
	if err := s.AppendAuditEvents(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	return events
}

// TestAuditEvents: audit events join their tenant's log next to its
// exports, each once, however late they were stored, and Verify
// recomputes them; an event changed, deleted, or stored behind runproof's
// back is named.
func TestAuditEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		l := newLedger(t, e.Store)
		start := time.Now().Add(-time.Hour)
		events := auditAt(t, e.Store, "acme", start, 5)
		auditAt(t, e.Store, "globex", start, 2) // another tenant's stay in its own log
		appendEach(t, l, finish(t, e.Store, "acme", 0, 2))
		if n, err := l.SyncAudit(ctx, "acme"); err != nil || n != 5 {
			t.Fatalf("SyncAudit: %d, %v", n, err)
		}
		if n, err := l.SyncAudit(ctx, "acme"); err != nil || n != 0 {
			t.Fatalf("SyncAudit again: %d, %v; want nothing appended", n, err)
		}
		entries, err := e.Store.LedgerEntries(ctx, "acme", 0, 100)
		if err != nil || len(entries) != 7 || entries[2].Type != ledger.AuditEntryType || entries[2].RecordID != events[0].ID {
			t.Fatalf("entries: %d, %v", len(entries), err)
		}
		if want := fmt.Sprintf(`"id":"%s"`, events[0].ID); !strings.Contains(string(entries[2].Data), want) {
			t.Errorf("leaf %s lacks %s", entries[2].Data, want)
		}
		// An event stored long after it occurred, and one not sealed yet:
		// both wait for their entry.
		auditAt(t, e.Store, "acme", time.Now().Add(-48*time.Hour), 1)
		auditAt(t, e.Store, "acme", time.Now(), 1)
		inPages(func(pageSize int64) {
			rep, err := verifyPaged(ctx, e.Store, l, "acme", nil, pageSize)
			if err != nil || rep.Entries != 7 || rep.AuditEvents != 5 {
				t.Fatalf("Verify: %+v, %v", rep, err)
			}
		})
		if n, err := l.SyncAudit(ctx, "acme"); err != nil || n != 2 {
			t.Fatalf("SyncAudit of the late events: %d, %v", n, err)
		}

		// Stored behind runproof's back: in neither the log nor waiting.
		e.exec(t, `INSERT INTO audit_events (tenant_id, id, occurred_at, actor, actor_type, category, action, resource,
			decision, status, correlation_id, source_component, detail) VALUES ('acme', 'forged-1',
			'2026-01-01T00:00:00.000000Z', 'key-1', 'HUMAN', 'access', 'GET /api/v1/runs', 'runs', 'allow', 200, '', 'api', '')`)
		_, err = verifyAs(ctx, e.Store, l, "acme", nil)
		if err == nil || !strings.Contains(err.Error(), "audit event forged-1 (occurred at 2026-01-01T00:00:00.000000Z) is neither in the ledger nor waiting") {
			t.Fatalf("an event stored behind the log's back: %v", err)
		}
		if e.name == "sqlite" {
			e.exec(t, "DROP TRIGGER audit_events_no_update", "DROP TRIGGER audit_events_no_delete")
		} else {
			e.exec(t, "DROP TRIGGER audit_events_append_only ON audit_events")
		}
		e.exec(t, "DELETE FROM audit_events WHERE id = 'forged-1'")
		e.exec(t, fmt.Sprintf("UPDATE audit_events SET detail = 'nothing to see' WHERE id = '%s'", events[3].ID))
		_, err = verifyAs(ctx, e.Store, l, "acme", nil)
		wantMismatch(t, err, 5)
		if !strings.Contains(err.Error(), "does not match the record of audit event "+events[3].ID+" (fields differ: [detail])") {
			t.Errorf("edited: %v", err)
		}
		e.exec(t, fmt.Sprintf("DELETE FROM audit_events WHERE id = '%s'", events[1].ID))
		_, err = verifyAs(ctx, e.Store, l, "acme", nil)
		wantMismatch(t, err, 3)
		if !strings.Contains(err.Error(), "audit event "+events[1].ID+" is not among the audit events") {
			t.Errorf("deleted: %v", err)
		}
		if _, err := verifyAs(ctx, e.Store, l, "globex", nil); err != nil {
			t.Errorf("the other tenant's log: %v", err)
		}
	})
}

// TestSeal: the sealer puts events into the log as they come, however
// late they are stored, and those of the last requests once it is stopped.
func TestSeal(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx, stop := context.WithCancel(context.Background())
		l := newLedger(t, e.Store)
		auditAt(t, e.Store, "acme", time.Now().Add(-time.Minute), 3)
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Seal(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if entries, err := e.Store.LedgerEntries(context.Background(), "acme", 0, 100); err == nil && len(entries) == 3 {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("after 10 s: %d entries, %v", len(entries), err)
			}
		}
		auditAt(t, e.Store, "acme", time.Now(), 1)
		auditAt(t, e.Store, "acme", time.Now().Add(-time.Hour), 1) // stored late
		stop()
		<-done
		rep, err := verifyAs(context.Background(), e.Store, l, "acme", nil)
		if err != nil || rep.AuditEvents != 5 {
			t.Fatalf("after the sealer stopped: %+v, %v", rep, err)
		}
	})
}

// TestSyncAuditStale: an audit event that is in the log yet still waits for
// it (written back behind runproof's back) is an error, not an endless loop.
func TestSyncAuditStale(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		l := newLedger(t, e.Store)
		ev := auditAt(t, e.Store, "acme", time.Now().Add(-time.Minute), 1)[0]
		if n, err := l.SyncAudit(ctx, "acme"); err != nil || n != 1 {
			t.Fatalf("first sync: %d, %v", n, err)
		}
		e.exec(t, fmt.Sprintf("INSERT INTO audit_unsealed (tenant_id, id, occurred_at) VALUES ('acme', '%s', '%s')",
			ev.ID, runproof.FormatTime(ev.OccurredAt)))
		_, err := l.SyncAudit(ctx, "acme")
		if err == nil || !strings.Contains(err.Error(), "still wait") || ctx.Err() != nil {
			t.Fatalf("sync over a stale wait: %v (context %v), want an error saying so", err, ctx.Err())
		}
	})
}

// TestSealSyncsExports: exports that finished without their entry (their
// process stopped in between) are appended by the sealer's next pass, not
// left for the next recovery.
func TestSealSyncsExports(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx, stop := context.WithCancel(context.Background())
		l := newLedger(t, e.Store)
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Seal(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		defer func() { stop(); <-done }()
		for _, batch := range [][2]int{{0, 2}, {2, 3}} { // before its first pass or after, and later
			recs := finish(t, e.Store, "acme", batch[0], batch[1])
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				_, err := e.Store.LedgerEntryByRecord(context.Background(), "acme", recs[len(recs)-1].ID, runproof.ExportEntryType)
				if err == nil {
					break
				} else if time.Now().After(deadline) {
					t.Fatalf("exports %v not in the ledger after 10 s: %v", batch, err)
				}
			}
		}
		if entries, err := e.Store.LedgerEntries(context.Background(), "acme", 0, 100); err != nil || len(entries) != 5 {
			t.Fatalf("%d entries, %v; want the 5 exports", len(entries), err)
		}
	})
}

// failingTenant is a store whose tenant "aaa" cannot list its exports
// missing from the ledger.
type failingTenant struct{ runproof.Store }

func (f failingTenant) ExportsMissingFromLedger(ctx context.Context, tenantID string, before time.Time) ([]runproof.Export, error) {
	if tenantID == "aaa" {
		return nil, errors.New("the disk is on fire")
	}
	return f.Store.ExportsMissingFromLedger(ctx, tenantID, before)
}

// TestSealSyncsPastAFailingTenant: a tenant whose log cannot take its
// exports does not keep the others' out.
func TestSealSyncsPastAFailingTenant(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx, stop := context.WithCancel(context.Background())
		l, err := ledger.New(failingTenant{e.Store}, testKey, keyName, ledger.Options{})
		if err != nil {
			t.Fatal(err)
		}
		finish(t, e.Store, "aaa", 0, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			l.Seal(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
		defer func() { stop(); <-done }()
		time.Sleep(50 * time.Millisecond) // a few passes fail on aaa
		recs := finish(t, e.Store, "bbb", 0, 1)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := e.Store.LedgerEntryByRecord(context.Background(), "bbb", recs[0].ID, runproof.ExportEntryType); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("bbb's export not in its ledger after 10 s: %v", err)
			}
		}
	})
}

// TestSealUnsealed: a tenant whose log this server cannot extend (signed
// by a key it does not know) is counted by Unsealed while its audit
// events wait, and no longer once another server has sealed them.
func TestSealUnsealed(t *testing.T) {
	eachEngine(t, func(t *testing.T, e engine) {
		ctx := context.Background()
		other := newLedgerKey(t, e.Store, otherKey)
		auditAt(t, e.Store, "acme", time.Now().Add(-time.Minute), 1)
		if _, err := other.SealTenant(ctx, "acme"); err != nil { // acme's log, signed by otherKey
			t.Fatal(err)
		}
		away := &awayStore{Store: e.Store}
		l, err := ledger.New(away, testKey, keyName, ledger.Options{}) // which does not know otherKey
		if err != nil {
			t.Fatal(err)
		}
		auditAt(t, e.Store, "acme", time.Now().Add(-time.Minute), 1)
		pass := func() {
			passCtx, stop := context.WithCancel(ctx)
			stop() // one pass, the last
			l.Seal(passCtx, time.Hour, slog.New(slog.DiscardHandler))
		}
		if pass(); l.Unsealed() != 1 {
			t.Errorf("after a pass that could not seal acme: Unsealed %d, want 1", l.Unsealed())
		}
		// A database away tells nothing of the keys: the count stands.
		away.away.Store(true)
		if pass(); l.Unsealed() != 1 {
			t.Errorf("after a pass with the database away: Unsealed %d, want 1 still", l.Unsealed())
		}
		away.away.Store(false)
		if _, err := other.SealTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if pass(); l.Unsealed() != 0 {
			t.Errorf("once acme's events are sealed: Unsealed %d, want 0", l.Unsealed())
		}
	})
}

// awayStore is a store whose database is away while away is set: its
// ledger appends fail as unavailable.
type awayStore struct {
	runproof.Store
	away atomic.Bool
}

func (a *awayStore) AppendLedger(ctx context.Context, tenantID string, fn func(runproof.LedgerState) (runproof.LedgerAppend, error)) error {
	if a.away.Load() {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached: retry shortly")
	}
	return a.Store.AppendLedger(ctx, tenantID, fn)
}
