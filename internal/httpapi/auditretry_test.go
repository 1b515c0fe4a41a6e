package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// flakyAudit is an audit store that cannot be reached for its first
// downTries calls (or always, when downTries is negative).
type flakyAudit struct {
	mu          sync.Mutex
	downTries   int
	calls       int
	inFlight    int
	maxInFlight int
	stored      []string
}

func (f *flakyAudit) record(_ context.Context, evs ...runproof.AuditEvent) error {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	down := f.downTries < 0 || f.calls <= f.downTries
	f.mu.Unlock()
	time.Sleep(time.Millisecond) // a write takes time: calls at once would overlap
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	if down {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	for _, ev := range evs {
		f.stored = append(f.stored, ev.ID)
	}
	return nil
}

func (f *flakyAudit) snapshot() (stored []string, maxInFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.stored...), f.maxInFlight
}

// waitIdle waits until q has no goroutine running.
func waitIdle(t *testing.T, q *auditRetry) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		q.mu.Lock()
		running := q.running
		q.mu.Unlock()
		if !running {
			return
		}
	}
	t.Fatal("the audit retry still runs")
}

// TestAuditRetry: events the database was away for are written once it is
// back, oldest first, by one writer at a time however many wait.
func TestAuditRetry(t *testing.T) {
	f := &flakyAudit{downTries: 3}
	const n = 1200 // more than two chunks
	q := &auditRetry{record: f.record, log: slog.New(slog.DiscardHandler), max: n,
		waits: []time.Duration{time.Millisecond, time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 8 * time.Millisecond}}
	// Half the events come while the writer runs.
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("ev-%04d", i))
		q.add(runproof.AuditEvent{ID: want[i]})
		if i == n/2 {
			time.Sleep(3 * time.Millisecond)
		}
	}
	waitIdle(t, q)
	stored, maxInFlight := f.snapshot()
	if !slices.Equal(stored, want) || maxInFlight != 1 {
		t.Fatalf("%d of %d events stored (in order: %v), %d writes at once", len(stored), n, slices.Equal(stored, want), maxInFlight)
	}
}

// TestAuditRetryGivesUp: events beyond the bound, and events still waiting
// when the database stays away past the backoff, are logged and dropped,
// and the writer stops.
func TestAuditRetryGivesUp(t *testing.T) {
	f := &flakyAudit{downTries: -1}
	var logged bytes.Buffer
	q := &auditRetry{record: f.record, log: slog.New(slog.NewTextHandler(&logged, nil)), max: 10, waits: []time.Duration{time.Millisecond, time.Millisecond}}
	for i := range 15 {
		q.add(runproof.AuditEvent{ID: fmt.Sprintf("ev-%d", i), Action: "GET /api/v1/runs"})
	}
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 0 {
		t.Fatalf("stored %v while the database was away", stored)
	}
	l := logged.String()
	if strings.Count(l, "too many wait for the database") != 5 || !strings.Contains(l, "the database was away for too long") || !strings.Contains(l, "events=10") {
		t.Errorf("logged:\n%s", l)
	}
	// Back again: new events are written.
	f.mu.Lock()
	f.downTries = 0
	f.mu.Unlock()
	q.add(runproof.AuditEvent{ID: "later"})
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 1 || stored[0] != "later" {
		t.Errorf("stored %v, want the later event", stored)
	}
}
