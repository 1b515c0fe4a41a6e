package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// AuditEntryType is the type of the leaf of an audit event.
const AuditEntryType = runproof.AuditEntryType

// AuditEntry is the leaf of one audit event: the event as recorded
// (docs/logs.md, "Audit"), its time UTC with six fractional digits. Its bytes are the
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

// auditBatch is how many audit events go under one checkpoint.
const auditBatch = 1000

// SyncAudit appends the tenant's audit events that wait for their entry
// (all of them, however late they were stored), oldest first, a thousand
// under each checkpoint, and returns how many it appended or found in the
// log already. A batch that still waits once appended is in the log
// already yet waits (a database restored over a newer ledger, say): it is
// an error, not a loop.
func (l *Ledger) SyncAudit(ctx context.Context, tenantID string) (int, error) {
	if err := checkTenant(tenantID); err != nil {
		return 0, err
	}
	total := 0
	var last []runproof.AuditEvent // the batch of the previous pass
	for {
		events, err := l.store.AuditEventsToSeal(ctx, tenantID, auditBatch)
		if err != nil || len(events) == 0 {
			return total, err
		}
		if len(last) == len(events) && last[0].ID == events[0].ID && last[len(last)-1].ID == events[len(events)-1].ID {
			return total, fmt.Errorf("ledger of tenant %q: %d audit events are in the ledger already yet still wait for it, among them %s: "+
				"was the database restored? run `runproof ledger verify`", tenantID, len(events), events[0].ID)
		}
		last = events
		leaves := make([]leaf, len(events))
		for i, ev := range events {
			data, err := auditLeafBytes(ev)
			if err != nil {
				return total, err
			}
			leaves[i] = leaf{recordID: ev.ID, typ: AuditEntryType, data: data}
		}
		if _, err := l.appendLeaves(ctx, tenantID, leaves); err != nil {
			return total, err
		}
		total += len(events)
	}
}

// Seal puts every tenant's waiting audit events, then its runs' new
// steps (SyncSteps), into its log every interval until ctx is done, and
// once more then (for at most lastSealPass). It also appends the exports
// that finished since its last pass and are not in the log (Sync): those
// of a process that stopped between finishing an export and appending it,
// which would otherwise wait for the next recovery. A tenant whose log
// cannot take them is logged, and tried again at the next interval; the
// others go on.
func (l *Ledger) Seal(ctx context.Context, every time.Duration, log *slog.Logger) {
	var exports int64  // where the exports that finished are read from next
	var retry []string // tenants whose finished exports their logs could not take
	for {
		last := ctx.Err() != nil
		pass, stop := ctx, func() {}
		if last {
			pass, stop = context.WithTimeout(context.WithoutCancel(ctx), lastSealPass)
		}
		exports, retry = l.syncFinished(pass, exports, retry, log)
		l.sealAll(pass, log)
		stop()
		if last {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

// syncFinished appends to their logs the exports that finished since
// position since and are missing there, and those of the tenants in retry,
// whose logs could not take them before. It returns the position to take
// up from next, and the tenants to try again.
func (l *Ledger) syncFinished(ctx context.Context, since int64, retry []string, log *slog.Logger) (int64, []string) {
	tenants, next, err := l.store.ExportTenantsFinishedSince(ctx, since)
	if err != nil {
		if ctx.Err() == nil {
			log.ErrorContext(ctx, "exports not put into the ledger yet", slog.Any("error", err))
		}
		return since, retry
	}
	tenants = append(tenants, retry...)
	slices.Sort(tenants)
	var failed []string
	for _, t := range slices.Compact(tenants) {
		if _, err := l.Sync(ctx, t); err != nil {
			if ctx.Err() == nil {
				log.ErrorContext(ctx, "exports not put into the ledger yet", slog.String("tenant_id", t), slog.Any("error", err))
			}
			failed = append(failed, t)
		}
	}
	return next, failed
}

// sealAll seals every tenant that has audit events or steps waiting for
// the ledger (SealTenant), logging a tenant that cannot take them.
func (l *Ledger) sealAll(ctx context.Context, log *slog.Logger) {
	var tenants []string
	listed := true
	for _, waiting := range []func(context.Context) ([]string, error){l.store.AuditTenantsToSeal, l.store.StepsTenantsToSeal} {
		ts, err := waiting(ctx)
		if err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "entries not put into the ledger yet", slog.Any("error", err))
			listed = false
		}
		tenants = append(tenants, ts...)
	}
	slices.Sort(tenants)
	var unsealed int64
	counted := listed // a pass that could not list the tenants, or seal one for the database, counts none
	for _, t := range slices.Compact(tenants) {
		if _, err := l.SealTenant(ctx, t); err != nil && ctx.Err() == nil {
			log.ErrorContext(ctx, "entries not put into the ledger yet", slog.String("tenant_id", t), slog.Any("error", err))
			unsealed++
			counted = counted && runproof.ErrorCode(err) != runproof.EUNAVAILABLE
		}
	}
	if counted && ctx.Err() == nil {
		l.unsealed.Store(unsealed)
	}
}

// Unsealed is how many tenants have audit events or steps that the last
// pass of Seal could not put into their ledger, of the passes that could
// reach the database throughout (a log signed by a key this server does
// not hold, say): what waits there is not sealed yet. A database away
// leaves the count as it was.
func (l *Ledger) Unsealed() int { return int(l.unsealed.Load()) }

// SealTenant puts a tenant's audit events that wait for the ledger into
// it, then its runs' new steps, and returns how many entries it appended.
// What it cannot seal keeps waiting, and the error names it ("steps not
// put into the ledger yet: …").
func (l *Ledger) SealTenant(ctx context.Context, tenantID string) (int, error) {
	audit, aerr := l.SyncAudit(ctx, tenantID)
	if aerr != nil {
		aerr = fmt.Errorf("audit events not put into the ledger yet: %w", aerr)
	}
	steps, serr := l.SyncSteps(ctx, tenantID)
	if serr != nil {
		serr = fmt.Errorf("steps not put into the ledger yet: %w", serr)
	}
	return audit + steps, errors.Join(aerr, serr)
}

// lastSealPass bounds the pass Seal makes once its context is done:
// a server that stops has little time left.
const lastSealPass = 3 * time.Second
