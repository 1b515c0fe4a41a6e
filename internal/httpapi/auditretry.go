package httpapi

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// maxAuditWaiting bounds the audit events kept waiting for the database
// (a few megabytes); auditChunk is how many are written at once.
const (
	maxAuditWaiting = 10_000
	auditChunk      = 500
)

// auditRetry writes again, in the background, the audit events of answered
// requests that the database could not be reached for. One goroutine, run
// only while events wait, writes them oldest first, a chunk at a time,
// waiting runproof.Backoff between tries while the database stays away; an outage costs that
// goroutine and a bounded queue, not a goroutine per request. Events that
// still wait when the backoff is spent (the database away for half a
// minute), or that find the queue full, are logged and dropped.
type auditRetry struct {
	record func(context.Context, ...runproof.AuditEvent) error
	log    *slog.Logger
	max    int             // events kept waiting at most
	waits  []time.Duration // between tries

	mu      sync.Mutex
	waiting []runproof.AuditEvent
	running bool
}

func newAuditRetry(record func(context.Context, ...runproof.AuditEvent) error, log *slog.Logger) *auditRetry {
	return &auditRetry{record: record, log: log, max: maxAuditWaiting, waits: runproof.Backoff}
}

// add makes ev wait for the database.
func (q *auditRetry) add(ev runproof.AuditEvent) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiting) >= q.max {
		q.log.Error("audit event not stored: too many wait for the database", slog.String("action", ev.Action),
			slog.String("tenant_id", ev.TenantID), slog.String("correlation_id", ev.CorrelationID))
		return
	}
	q.waiting = append(q.waiting, ev)
	if !q.running {
		q.running = true
		go q.run()
	}
}

// run writes the waiting events until none is left.
func (q *auditRetry) run() {
	tries := 0 // in a row without progress
	for {
		time.Sleep(q.waits[tries])
		q.mu.Lock()
		batch := q.waiting
		q.waiting = nil
		q.mu.Unlock()
		stored := 0
		for stored < len(batch) {
			chunk := batch[stored:min(stored+auditChunk, len(batch))]
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := q.record(ctx, chunk...)
			cancel()
			if runproof.ErrorCode(err) == runproof.EUNAVAILABLE {
				break // still away: this chunk and those after it wait
			} else if err != nil {
				q.log.Error("audit events not stored", slog.Int("events", len(chunk)), slog.Any("error", err))
			}
			stored += len(chunk)
		}
		if stored > 0 {
			tries = 0
		} else {
			tries++
		}
		left := batch[stored:]
		if tries == len(q.waits) {
			q.log.Error("audit events not stored: the database was away for too long", slog.Int("events", len(left)))
			left, tries = nil, 0
		}
		q.mu.Lock()
		q.waiting = append(left, q.waiting...)
		if len(q.waiting) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
	}
}
