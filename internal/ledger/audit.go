package ledger

import (
	"context"
	"log/slog"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// AuditEntryType is the type of the leaf of an audit event.
const AuditEntryType = runproof.AuditEntryType

// AuditEntry is the leaf of one audit event: the event as recorded
// (DOMAIN.md), its time UTC with six fractional digits. Its bytes are the
// RFC 8785 form of this object.
type AuditEntry struct {
	Type            string `json:"type"`
	ID              string `json:"id"`
	TenantID        string `json:"tenant_id"`
	OccurredAt      string `json:"occurred_at"`
	Actor           string `json:"actor"`
	ActorType       string `json:"actor_type"`
	Category        string `json:"category"`
	Action          string `json:"action"`
	Resource        string `json:"resource"`
	Decision        string `json:"decision"`
	Status          int    `json:"status"`
	CorrelationID   string `json:"correlation_id"`
	SourceComponent string `json:"source_component"`
	Detail          string `json:"detail"`
}

// AuditEntryFor returns the entry of an audit event.
func AuditEntryFor(ev runproof.AuditEvent) AuditEntry {
	return AuditEntry{Type: AuditEntryType, ID: ev.ID, TenantID: ev.TenantID, OccurredAt: runproof.FormatTime(ev.OccurredAt),
		Actor: ev.Actor, ActorType: string(ev.ActorType), Category: ev.Category, Action: ev.Action, Resource: ev.Resource,
		Decision: ev.Decision, Status: ev.Status, CorrelationID: ev.CorrelationID, SourceComponent: ev.SourceComponent,
		Detail: ev.Detail}
}

// Bytes returns the leaf bytes: the entry's RFC 8785 form.
func (e AuditEntry) Bytes() ([]byte, error) { return runproof.Canonical(e) }

func auditLeafBytes(ev runproof.AuditEvent) ([]byte, error) { return AuditEntryFor(ev).Bytes() }

// AuditLag bounds how long after it occurred an audit event is committed:
// the request that writes it ends within the server's write timeout. The
// sealer looks that far back for events committed after later ones were
// sealed, and Verify requires every event that occurred more than
// AuditLag before the newest one in the log to be in it.
const AuditLag = 10 * time.Minute

// auditBatch is how many audit events go under one checkpoint.
const auditBatch = 1000

// SyncAudit appends the tenant's audit events that occurred at or after
// since and are not in its log yet, oldest first, a thousand under each
// checkpoint, and returns how many it appended.
func (l *Ledger) SyncAudit(ctx context.Context, tenantID string, since time.Time) (int, error) {
	if err := checkTenant(tenantID); err != nil {
		return 0, err
	}
	total := 0
	for {
		events, err := l.store.AuditEventsNotInLedger(ctx, tenantID, since, auditBatch)
		if err != nil || len(events) == 0 {
			return total, err
		}
		leaves := make([]leaf, len(events))
		for i, ev := range events {
			data, err := auditLeafBytes(ev)
			if err != nil {
				return total, err
			}
			leaves[i] = leaf{exportID: ev.ID, typ: AuditEntryType, data: data}
		}
		if _, err := l.appendLeaves(ctx, tenantID, leaves); err != nil {
			return total, err
		}
		total += len(events)
		if len(events) < auditBatch {
			return total, nil
		}
	}
}

// SealAudit puts every tenant's audit events into its log every interval
// until ctx is done, and once more then (for at most ten seconds): at
// first all of them not in it yet, then those of the last interval and
// AuditLag. A failure is logged and the same events are tried again at the
// next interval.
func (l *Ledger) SealAudit(ctx context.Context, every time.Duration, log *slog.Logger) {
	var since time.Time // the first pass looks at every event
	for {
		last := ctx.Err() != nil
		pass, stop := ctx, func() {}
		if last {
			pass, stop = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		}
		started := l.now()
		err := l.sealAll(pass, since)
		stop()
		if err == nil {
			since = started.Add(-AuditLag)
		} else {
			log.ErrorContext(ctx, "audit events not put into the ledger yet", slog.Any("error", err))
		}
		if last {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

func (l *Ledger) sealAll(ctx context.Context, since time.Time) error {
	tenants, err := l.store.AuditTenants(ctx, since)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		if _, err := l.SyncAudit(ctx, t, since); err != nil {
			return err
		}
	}
	return nil
}
