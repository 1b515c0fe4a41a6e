package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// maxAuditWaiting bounds the audit events kept waiting for the database
// (a few megabytes); auditChunk is how many are written at once.
const (
	maxAuditWaiting = 10_000
	auditChunk      = 500
)

// auditTimeout bounds one write of audit events: a database slower than
// that is taken for away, and the events wait to be written again. A
// request's connection waits for its event's first write.
const auditTimeout = 3 * time.Second

// auditBehind is how long audit events may wait for the database before
// the server refuses requests (503) until they are stored: no request is
// answered while the record of earlier ones may not be kept, whether the
// database is away or its writer too busy (one tenant's flood of steps)
// to take them.
const auditBehind = 5 * time.Second

// auditRetry writes again, in the background, the audit events of answered
// requests that the database could not be reached for. One goroutine, run
// only while events wait, writes them oldest first, a chunk at a time,
// waiting runproof.Backoff() between tries while the database stays away;
// an outage costs that goroutine and a bounded queue, not a goroutine per
// request. Events wait as long as the database stays away: once the oldest
// has waited auditBehind, the server takes no more requests (behind), so
// the queue grows only by the requests already running. One finding the
// queue full is logged and dropped, as are those left when the server
// stops (FlushAudit).
type auditRetry struct {
	record  func(context.Context, ...runproof.AuditEvent) error
	log     *slog.Logger
	max     int             // events kept waiting at most
	waits   []time.Duration // between tries
	timeout time.Duration   // of one write: a database slower than that is away
	now     func() time.Time

	wake chan struct{} // cuts the wait before the next try short
	lost atomic.Int64  // events dropped unstored (logged each time)

	mu      sync.Mutex
	nudged  time.Time // when nudge last woke the writer
	waiting []waitingEvent
	held    int       // events being written, out of waiting
	heldAt  time.Time // since when the oldest of those waits
	running bool      // a writer runs
	closed  bool      // the writer stops at its next try, leaving the events
}

type waitingEvent struct {
	runproof.AuditEvent
	since time.Time
}

func newAuditRetry(record func(context.Context, ...runproof.AuditEvent) error, log *slog.Logger) *auditRetry {
	return &auditRetry{record: record, log: log, max: maxAuditWaiting, waits: runproof.Backoff(), timeout: auditTimeout, now: time.Now,
		wake: make(chan struct{}, 1)}
}

// add makes ev wait for the database.
func (q *auditRetry) add(ev runproof.AuditEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	why := ""
	switch {
	case q.closed:
		why = "audit event not stored: the server has stopped"
	case len(q.waiting)+q.held >= q.max:
		why = "audit event not stored: too many wait for the database"
	}
	if why != "" {
		q.logLost(why, []waitingEvent{{AuditEvent: ev}}, nil)
		q.lost.Add(1)
		return
	}
	q.waiting = append(q.waiting, waitingEvent{ev, q.now()})
	if !q.running {
		q.running = true
		go q.run()
	}
}

// store writes ev now, or makes it wait for the database: when the
// database is away, and when events wait already (it was away a moment
// ago), behind them, in order, without holding the caller for another try;
// the writer is nudged to try soon. Its error is a refusal of the event
// other than the database's absence.
func (q *auditRetry) store(ctx context.Context, ev runproof.AuditEvent) error {
	if q.waitingNow() > 0 {
		q.add(ev)
		q.nudge()
		return nil
	}
	err := q.try(ctx, []waitingEvent{{AuditEvent: ev}})
	if err == errAway {
		q.add(ev)
		return nil
	} else if err != nil {
		q.lost.Add(1) // the caller logs it
	}
	return err
}

// nudge wakes the writer, at most once a second, to try now rather than
// at the end of its backoff: events that keep coming while others wait
// find out soon that the database is back, and a database still away is
// not tried more than once a second.
func (q *auditRetry) nudge() {
	q.mu.Lock()
	now := q.now()
	due := now.Sub(q.nudged) >= time.Second
	if due {
		q.nudged = now
	}
	q.mu.Unlock()
	if due {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// behind returns how long the oldest event waiting for the database has
// waited, 0 when none waits.
func (q *auditRetry) behind() time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.held > 0:
		return q.now().Sub(q.heldAt)
	case len(q.waiting) > 0:
		return q.now().Sub(q.waiting[0].since)
	}
	return 0
}

// refusal says why the server takes no request while audit events wait
// (once the oldest has waited auditBehind), "" when it takes them.
func (q *auditRetry) refusal() string {
	wait := q.behind()
	if wait < auditBehind {
		return ""
	}
	return fmt.Sprintf("audit events have waited %s for the database: no request is taken until they are stored, "+
		"so that none is answered unrecorded; retry shortly", wait.Round(time.Second))
}

// waitingNow returns how many events wait for the database.
func (q *auditRetry) waitingNow() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting) + q.held
}

// FlushAudit tries at once to write the audit events that wait for the
// database, and again until none is left or ctx is done; then it stops the
// writer and returns how many were left: a server that stops calls it
// last, and logs them as lost.
func (s *Server) FlushAudit(ctx context.Context) int {
	q := s.audits
	for {
		select { // try now, not at the end of the backoff's wait
		case q.wake <- struct{}{}:
		default:
		}
		if n := q.waitingNow(); n == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			q.mu.Lock()
			q.closed = true
			n := len(q.waiting) + q.held
			q.mu.Unlock()
			select { // the writer stops now, not at the end of its wait
			case q.wake <- struct{}{}:
			default:
			}
			return n
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// run writes the waiting events until none is left.
func (q *auditRetry) run() {
	tries := 0 // in a row without progress
	for {
		select {
		case <-time.After(q.waits[min(tries, len(q.waits)-1)]):
		case <-q.wake:
		}
		q.mu.Lock()
		if q.closed {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := q.waiting
		q.waiting, q.held = nil, len(batch)
		if len(batch) > 0 {
			q.heldAt = batch[0].since
		}
		q.mu.Unlock()

		stored := q.write(batch)
		if stored > 0 {
			tries = 0
		} else {
			tries++
		}
		left := batch[stored:]
		q.mu.Lock()
		q.waiting, q.held = append(left, q.waiting...), 0
		if len(q.waiting) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
}

// maxLostLogged bounds the lines logging one batch of lost events.
const maxLostLogged = 100

// logLost logs audit events that will not be stored, one line each (up to
// maxLostLogged, then a count), with what identifies them: that they can
// be told apart, and their requests found, in the log.
func (q *auditRetry) logLost(msg string, events []waitingEvent, err error) {
	for i, ev := range events {
		if i == maxLostLogged {
			q.log.Error(msg, slog.Int("more_events", len(events)-i))
			return
		}
		attrs := []any{slog.String("tenant_id", ev.TenantID), slog.String("action", ev.Action), slog.String("actor", ev.Actor),
			slog.String("resource", ev.Resource), slog.String("correlation_id", ev.CorrelationID),
			slog.Time("occurred_at", ev.OccurredAt)}
		if err != nil {
			attrs = append(attrs, slog.Any("error", err))
		}
		q.log.Error(msg, attrs...)
	}
}

// write writes events in order, a chunk at a time, and returns how many
// are done with: written, already stored, or refused and logged. It stops
// at the first that finds the database away.
func (q *auditRetry) write(events []waitingEvent) int {
	done := 0
	for done < len(events) {
		chunk := events[done:min(done+auditChunk, len(events))]
		switch err := q.try(context.Background(), chunk); {
		case err == errAway:
			return done
		case err != nil && len(chunk) > 1:
			// One event of the chunk is refused (one already stored, say):
			// the others are written one by one.
			for i := range chunk {
				if err := q.try(context.Background(), chunk[i:i+1]); err == errAway {
					return done + i
				} else if err != nil {
					q.logLost("audit event not stored", chunk[i:i+1], err)
					q.lost.Add(1)
				}
			}
		case err != nil:
			q.logLost("audit event not stored", chunk, err)
			q.lost.Add(1)
		}
		done += len(chunk)
	}
	return done
}

// errAway is a write that found the database away, or too slow to answer.
var errAway = runproof.Errorf(runproof.EUNAVAILABLE, "the database cannot be reached")

// try writes events in one call, within q.timeout of ctx: errAway when
// the database is away or slower than that. An event stored already (by
// the write that seemed to fail: its answer was lost) counts as written.
func (q *auditRetry) try(ctx context.Context, events []waitingEvent) error {
	evs := make([]runproof.AuditEvent, len(events))
	for i, w := range events {
		evs[i] = w.AuditEvent
	}
	ctx, cancel := context.WithTimeout(ctx, q.timeout)
	defer cancel()
	err := q.record(ctx, evs...)
	switch {
	case runproof.ErrorCode(err) == runproof.EUNAVAILABLE || err != nil && ctx.Err() != nil:
		return errAway
	case runproof.ErrorCode(err) == runproof.ECONFLICT && len(evs) == 1:
		return nil
	}
	return err
}
