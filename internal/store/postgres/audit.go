package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

const auditColumns = `tenant_id, id, occurred_at, actor, actor_type, category, action,
	resource, decision, status, correlation_id, source_component, detail`

func scanAudit(row pgx.Row) (runproof.AuditEvent, error) {
	var e runproof.AuditEvent
	err := row.Scan(&e.TenantID, &e.ID, &e.OccurredAt, &e.Actor, &e.ActorType, &e.Category,
		&e.Action, &e.Resource, &e.Decision, &e.Status, &e.CorrelationID, &e.SourceComponent, &e.Detail)
	e.OccurredAt = runproof.Timestamp(e.OccurredAt)
	return e, err
}

// AppendAuditEvents stores all events or none, in one round trip.
func (s *Store) AppendAuditEvents(ctx context.Context, events ...runproof.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var b pgx.Batch
		for _, e := range events {
			b.Queue(`INSERT INTO audit_events (`+auditColumns+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
				e.TenantID, e.ID, runproof.Timestamp(e.OccurredAt), e.Actor, string(e.ActorType),
				e.Category, e.Action, e.Resource, e.Decision, e.Status, e.CorrelationID,
				e.SourceComponent, e.Detail)
			// It waits for its ledger entry.
			b.Queue(`INSERT INTO audit_unsealed (tenant_id, id, occurred_at) VALUES ($1, $2, $3)`,
				e.TenantID, e.ID, runproof.Timestamp(e.OccurredAt))
		}
		br := tx.SendBatch(ctx, &b)
		for _, e := range events {
			for range 2 { // the event, then its wait
				if _, err := br.Exec(); isUnique(err) {
					br.Close()
					return runproof.Errorf(runproof.ECONFLICT, "audit event %q already exists", e.ID)
				} else if err != nil {
					br.Close()
					return err
				}
			}
		}
		return br.Close()
	})
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	return nil
}

// ListAuditEvents returns events newest first.
func (s *Store) ListAuditEvents(ctx context.Context, p runproof.ListAuditParams) ([]runproof.AuditEvent, error) {
	var f filter
	f.add("tenant_id = ?", p.TenantID)
	if p.Category != "" {
		f.add("category = ?", p.Category)
	}
	if p.System {
		f.add("(source_component <> 'api' OR actor = 'system')") // as audit_system's WHERE, for SQLite to use it
	}
	f.timeRange("occurred_at", p.From, p.To)
	events, err := collect(ctx, s.pool, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE `+f.conds+` ORDER BY occurred_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}

// LedgerAuditEvents returns the audit events of the ledger's audit entries
// of index in [from, to).
func (s *Store) LedgerAuditEvents(ctx context.Context, tenantID string, from, to int64) ([]runproof.AuditEvent, error) {
	events, err := collect(ctx, s.pool, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = $1 AND id IN (SELECT export_id FROM ledger_entries
			WHERE tenant_id = $1 AND idx >= $2 AND idx < $3 AND entry_type = $4)`,
		tenantID, from, to, runproof.AuditEntryType)
	if err != nil {
		return nil, fmt.Errorf("ledger audit events: %w", err)
	}
	return events, nil
}

// AuditEventsToSeal returns audit events that wait for their ledger entry,
// oldest first.
func (s *Store) AuditEventsToSeal(ctx context.Context, tenantID string, limit int) ([]runproof.AuditEvent, error) {
	ids, err := collect(ctx, s.pool, scanString, `SELECT id FROM audit_unsealed WHERE tenant_id = $1
		ORDER BY occurred_at, id`+page(limit, 0), tenantID)
	if err != nil {
		return nil, fmt.Errorf("audit events to seal: %w", err)
	}
	events, err := collect(ctx, s.pool, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = $1 AND id = ANY($2) ORDER BY occurred_at, id`, tenantID, ids)
	if err == nil {
		err = runproof.MissingAuditEvents(ids, events)
	}
	if err != nil {
		return nil, fmt.Errorf("audit events to seal: %w", err)
	}
	return events, nil
}

// AuditTenantsToSeal lists the tenants with audit events to seal.
func (s *Store) AuditTenantsToSeal(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.pool, scanString, `SELECT DISTINCT tenant_id FROM audit_unsealed ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("audit tenants to seal: %w", err)
	}
	return out, nil
}

// AuditEventsMissingFromLedger returns audit events that neither are in
// the ledger nor wait for it. Their ids are a set difference, which the
// planner cannot turn into a nested loop over the tables, whatever it
// knows of them.
func (s *Store) AuditEventsMissingFromLedger(ctx context.Context, tenantID string, limit int) ([]runproof.AuditEvent, error) {
	ids, err := collect(ctx, s.pool, scanString, `SELECT id FROM audit_events WHERE tenant_id = $1
		EXCEPT SELECT id FROM audit_unsealed WHERE tenant_id = $1
		EXCEPT SELECT export_id FROM ledger_entries WHERE tenant_id = $1 AND entry_type = $2`,
		tenantID, runproof.AuditEntryType)
	if err != nil {
		return nil, fmt.Errorf("audit events missing from the ledger: %w", err)
	}
	events, err := collect(ctx, s.pool, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = $1 AND id = ANY($2) ORDER BY occurred_at, id`+page(limit, 0), tenantID, ids)
	if err != nil {
		return nil, fmt.Errorf("audit events missing from the ledger: %w", err)
	}
	return events, nil
}
