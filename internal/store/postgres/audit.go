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
		}
		br := tx.SendBatch(ctx, &b)
		for _, e := range events {
			if _, err := br.Exec(); isUnique(err) {
				br.Close()
				return runproof.Errorf(runproof.ECONFLICT, "audit event %q already exists", e.ID)
			} else if err != nil {
				br.Close()
				return err
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
	f.timeRange("occurred_at", p.From, p.To)
	events, err := collect(ctx, s.pool, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE `+f.conds+` ORDER BY occurred_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}
