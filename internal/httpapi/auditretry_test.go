package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// auditStore is an audit store, in memory, that writes a call's events in
// one transaction, refuses an event it holds already (ECONFLICT), and can
// be made away (unreachable) or hung (answering only when the call's
// context ends).
type auditStore struct {
	mu          sync.Mutex
	awayTries   int // the first calls find it away (all of them when negative)
	hung        int // the first calls hang
	calls       int // calls so far
	inFlight    int // calls running now
	maxInFlight int // calls running at once, at most
	stored      []string
}

func (f *auditStore) record(ctx context.Context, evs ...runproof.AuditEvent) error {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	away, hung := f.awayTries < 0 || f.calls <= f.awayTries, f.calls <= f.hung
	f.mu.Unlock()
	if hung {
		<-ctx.Done()
	}
	time.Sleep(time.Millisecond) // a write takes time: calls at once would overlap
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	switch {
	case hung:
		return fmt.Errorf("append audit events: %w", ctx.Err())
	case away:
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	for _, ev := range evs {
		if slices.Contains(f.stored, ev.ID) {
			return runproof.Errorf(runproof.ECONFLICT, "audit event %q already exists", ev.ID)
		}
	}
	for _, ev := range evs {
		f.stored = append(f.stored, ev.ID)
	}
	return nil
}

func (f *auditStore) snapshot() (stored []string, maxInFlight int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stored), f.maxInFlight
}

// newTestRetry returns an auditRetry over f with waits of a millisecond.
func newTestRetry(f *auditStore, log *syncBuffer, max int) *auditRetry {
	q := newAuditRetry(f.record, slog.New(slog.NewTextHandler(log, nil)))
	q.max, q.waits, q.timeout = max, []time.Duration{time.Millisecond, time.Millisecond, 2 * time.Millisecond}, 50*time.Millisecond
	return q
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
	f := &auditStore{awayTries: 3}
	const n = 1200 // more than two chunks
	var logged syncBuffer
	q := newTestRetry(f, &logged, n)
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
	if !slices.Equal(stored, want) || maxInFlight != 1 || logged.String() != "" {
		t.Fatalf("%d of %d events stored (in order: %v), %d writes at once; logged %q", len(stored), n, slices.Equal(stored, want), maxInFlight, logged.String())
	}
}

// TestAuditRetryStoredAlready: an event whose first write was stored
// though it seemed to fail is not written twice, and does not hold back
// the others of its chunk.
func TestAuditRetryStoredAlready(t *testing.T) {
	f := &auditStore{stored: []string{"ev-0050"}}
	var logged syncBuffer
	q := newTestRetry(f, &logged, 1000)
	for i := range 100 {
		q.add(runproof.AuditEvent{ID: fmt.Sprintf("ev-%04d", i)})
	}
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 100 || logged.String() != "" {
		t.Errorf("%d events stored, want 100; logged %q", len(stored), logged.String())
	}
}

// TestAuditRetryHungDatabase: a database that does not answer in time is
// away, not a refusal: the events wait for it.
func TestAuditRetryHungDatabase(t *testing.T) {
	f := &auditStore{hung: 2}
	var logged syncBuffer
	q := newTestRetry(f, &logged, 1000)
	q.add(runproof.AuditEvent{ID: "ev"})
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 1 || logged.String() != "" {
		t.Errorf("stored %v; logged %q", stored, logged.String())
	}
}

// TestAuditRetryGivesUp: an event that finds the queue full is logged and
// dropped; those that wait, wait as long as the database stays away (the
// server takes no requests meanwhile), and are stored once it is back, as
// is one that comes later. behind says how long the oldest has waited.
func TestAuditRetryGivesUp(t *testing.T) {
	f := &auditStore{awayTries: -1}
	var logged syncBuffer
	q := newAuditRetry(f.record, slog.New(slog.NewTextHandler(&logged, nil)))
	q.max, q.waits, q.timeout = 10, []time.Duration{time.Millisecond}, 50*time.Millisecond
	var clock atomic.Int64 // the time the queue goes by, set by the test
	q.now = func() time.Time { return time.Unix(0, clock.Load()) }
	clock.Store(time.Now().UnixNano())

	if q.behind() != 0 {
		t.Errorf("behind %v with nothing waiting", q.behind())
	}
	for i := range 15 {
		q.add(runproof.AuditEvent{ID: fmt.Sprintf("ev-%d", i), TenantID: "acme", Action: "GET /api/v1/runs", CorrelationID: fmt.Sprintf("c-%d", i)})
	}
	// Each is logged with what identifies it.
	refused := len(regexp.MustCompile(`too many wait for the database" tenant_id=acme action="GET /api/v1/runs" .* correlation_id=c-\d+ `).
		FindAllString(logged.String(), -1))
	if refused != 5 {
		t.Fatalf("%d events refused as too many, want 5:\n%s", refused, logged.String())
	}
	clock.Add(int64(time.Hour)) // the database stays away an hour
	time.Sleep(20 * time.Millisecond)
	if b := q.behind(); b < time.Hour {
		t.Errorf("behind %v after an hour", b)
	}
	q.add(runproof.AuditEvent{ID: "late"}) // the queue is full still: refused
	f.mu.Lock()
	f.awayTries = 0 // back
	f.mu.Unlock()
	waitIdle(t, q)
	q.add(runproof.AuditEvent{ID: "late"})
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 11 || stored[10] != "late" {
		t.Errorf("stored %v, want the 10 that waited, then the late event", stored)
	}
	if lost := q.lost.Load(); lost != 6 || q.behind() != 0 {
		t.Errorf("%d events counted as lost, want the 6 refused; behind %v", lost, q.behind())
	}
}

// syncBuffer is a bytes.Buffer safe to write from the writer's goroutine
// while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestFlushAudit: a flush tries at once, not at the end of the backoff's
// wait, and writes what waits once the database is back; one that runs
// out of time stops the writer and says how many were left.
func TestFlushAudit(t *testing.T) {
	f := &auditStore{awayTries: 2}
	var logged syncBuffer
	q := newTestRetry(f, &logged, 100)
	q.waits = []time.Duration{time.Millisecond, time.Hour} // the second wait would outlast the test
	s := &Server{audits: q}
	q.add(runproof.AuditEvent{ID: "ev"})
	time.Sleep(20 * time.Millisecond) // the writer tried once, in vain, and waits an hour
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n := s.FlushAudit(ctx); n != 0 {
		t.Fatalf("%d events left after the flush", n)
	}
	if stored, _ := f.snapshot(); !slices.Equal(stored, []string{"ev"}) {
		t.Fatalf("stored %v", stored)
	}

	f.mu.Lock()
	f.awayTries = -1 // away for good
	f.mu.Unlock()
	q.add(runproof.AuditEvent{ID: "lost"})
	short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if n := s.FlushAudit(short); n != 1 {
		t.Errorf("%d events left after a flush out of time, want 1", n)
	}
	waitIdle(t, q)
	q.add(runproof.AuditEvent{ID: "after"})
	if l := logged.String(); !strings.Contains(l, "the server has stopped") {
		t.Errorf("an event after the flush: logged %q", l)
	}
}

// TestAuditRetryNudge: a writer waiting out a long backoff tries at once
// when nudged, but not more than once a second.
func TestAuditRetryNudge(t *testing.T) {
	f := &auditStore{}
	var logged syncBuffer
	q := newTestRetry(f, &logged, 100)
	q.waits = []time.Duration{time.Hour} // without a nudge, no try in this test
	q.add(runproof.AuditEvent{ID: "ev-1"})
	q.nudge()
	waitIdle(t, q)
	if stored, _ := f.snapshot(); !slices.Equal(stored, []string{"ev-1"}) {
		t.Fatalf("stored %v after a nudge, want ev-1", stored)
	}
	// A second nudge within the second does not wake the writer.
	q.add(runproof.AuditEvent{ID: "ev-2"})
	q.nudge()
	time.Sleep(20 * time.Millisecond)
	if stored, _ := f.snapshot(); len(stored) != 1 {
		t.Errorf("stored %v: a nudge within the second woke the writer", stored)
	}
	q.mu.Lock()
	q.nudged = time.Time{} // a second later
	q.mu.Unlock()
	q.nudge()
	waitIdle(t, q)
	if stored, _ := f.snapshot(); len(stored) != 2 {
		t.Errorf("stored %v after a nudge a second later", stored)
	}
}

// awayAudit is a store whose audit writes find the database away while
// away is set.
type awayAudit struct {
	runproof.Store
	away atomic.Bool
}

func (s *awayAudit) AppendAuditEvents(ctx context.Context, events ...runproof.AuditEvent) error {
	if s.away.Load() {
		return runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")
	}
	return s.Store.AppendAuditEvents(ctx, events...)
}

// TestBehindOnAudit: once audit events have waited auditBehind for the
// database, requests are refused (503, OTLP's status for OTLP) until they
// are stored, so that none is answered unrecorded; probes are answered.
func TestBehindOnAudit(t *testing.T) {
	store := &awayAudit{Store: storetest.OpenSQLite(t)}
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc, export.New(store, dir, export.Options{}), Options{})
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	s.audits.now = func() time.Time { return time.Unix(0, clock.Load()) }
	key, _, err := svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path, contentType string) *httptest.ResponseRecorder {
		method, body := "GET", io.Reader(nil)
		if contentType != "" {
			method, body = "POST", strings.NewReader("{}")
		}
		r := httptest.NewRequest(method, path, body)
		r.Header.Set("Authorization", "Bearer "+key)
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}

	store.away.Store(true)
	if w := get("/api/v1/policies", ""); w.Code != 200 || s.audits.waitingNow() != 1 {
		t.Fatalf("a request while its audit event may wait: %d, %d waiting", w.Code, s.audits.waitingNow())
	}
	clock.Add(int64(auditBehind))
	w := get("/api/v1/policies", "")
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "audit events have waited 5s for the database") {
		t.Errorf("a request while audit events wait %v: %d %v %s", auditBehind, w.Code, w.Header(), w.Body)
	}
	if w := get("/v1/traces", "application/json"); w.Code != 503 || w.Header().Get("Retry-After") == "" ||
		!strings.Contains(w.Body.String(), `"code":14`) {
		t.Errorf("OTLP while audit events wait: %d %v %s", w.Code, w.Header(), w.Body)
	}
	if w := get("/healthz", ""); w.Code != 200 {
		t.Errorf("health probe while audit events wait: %d", w.Code)
	}
	if w := get("/readyz", ""); w.Code != 503 || !strings.Contains(w.Body.String(), "audit events have waited") {
		t.Errorf("readiness while requests are refused: %d %s", w.Code, w.Body)
	}
	if n := s.audits.waitingNow(); n != 1 {
		t.Errorf("%d events wait; the refusals made none", n)
	}

	store.away.Store(false) // back: the event is stored, requests taken again
	waitIdle(t, s.audits)
	if w := get("/api/v1/policies", ""); w.Code != 200 {
		t.Errorf("a request once the audit events are stored: %d %s", w.Code, w.Body)
	}
	if w := get("/readyz", ""); w.Code != 200 {
		t.Errorf("readiness once the audit events are stored: %d %s", w.Code, w.Body)
	}
}

// TestWriteTurn: batches of steps are written Options.Writing at a time,
// half of them at most one tenant's; one that gets no turn before its
// request's time runs out is refused with 503, while another tenant's
// still gets one, and one that comes once a turn is free is written.
func TestWriteTurn(t *testing.T) {
	store := storetest.OpenSQLite(t)
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc, export.New(store, dir, export.Options{}), Options{Writing: 2, RequestTimeout: 200 * time.Millisecond})
	post := func(key, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	start := time.Now().UTC().Format(time.RFC3339Nano)
	steps := `{"steps":[{"step_index":0,"timestamp":"` + start + `","step_type":"llm:x","cost_cents":1}]}`
	keys := map[string]string{}
	for _, tenant := range []string{"acme", "globex"} {
		key, _, err := svc.CreateAPIKey(context.Background(), tenant, service.KeyInput{Role: runproof.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		keys[tenant] = key
		if w := post(key, "/api/v1/runs", `{"run_id":"r","agent_id":"a","started_at":"`+start+`"}`); w.Code != 201 {
			t.Fatalf("open the run: %d %s", w.Code, w.Body)
		}
	}
	done, err := s.writing.take(context.Background(), "acme", 1) // acme's batch is being written: its half of the turns
	if err != nil {
		t.Fatal(err)
	}
	if w := post(keys["acme"], "/api/v1/runs/r/steps", steps); w.Code != 503 || !strings.Contains(w.Body.String(), "writing too many batches of steps at once") {
		t.Errorf("a second batch of acme's: %d %s", w.Code, w.Body)
	}
	if w := post(keys["acme"], "/v1/traces", `{"resourceSpans":[]}`); w.Code != 503 || !strings.Contains(w.Body.String(), `"code":14`) ||
		!strings.Contains(w.Body.String(), "writing too many") {
		t.Errorf("OTLP spans of acme's with no turn: %d %s", w.Code, w.Body)
	}
	if w := post(keys["globex"], "/api/v1/runs/r/steps", steps); w.Code != 200 {
		t.Errorf("a batch of another tenant's while acme holds its turns: %d %s", w.Code, w.Body)
	}
	done()
	if w := post(keys["acme"], "/api/v1/runs/r/steps", steps); w.Code != 200 {
		t.Errorf("a batch once a turn is free: %d %s", w.Code, w.Body)
	}
	if n := len(s.writing.tenants); n != 0 {
		t.Errorf("%d tenants kept with no batch waiting", n)
	}
}

// TestWaitBounded: a request given a longest wait (OTLP's, otlpWait, which
// exporters' own timeouts call for) waits no longer for a write turn or
// for room for its body, though its own time would let it.
func TestWaitBounded(t *testing.T) {
	s := &Server{writing: newShares(1, 1)}
	done, err := s.writing.take(context.Background(), "acme", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	c := &call{r: httptest.NewRequest("POST", "/v1/traces", nil), key: runproof.APIKey{TenantID: "globex"},
		bodies: newShares(1, 1), wait: 20 * time.Millisecond} // a request of no deadline
	start := time.Now()
	if _, err := s.writeTurn(c); runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Errorf("a write turn: %v", err)
	}
	if _, err := c.reserveBody(10, false); runproof.ErrorCode(err) != runproof.EUNAVAILABLE {
		t.Errorf("room for a body: %v", err)
	}
	if waited := time.Since(start); waited > DefaultRequestTimeout/2 {
		t.Errorf("waited %v", waited)
	}
}
