package sqlite

import (
	"context"
	"fmt"

	"github.com/runproof/runproof/internal/runproof"
)

const auditColumns = `tenant_id, id, occurred_at, actor, actor_type, category, action,
	resource, decision, status, correlation_id, source_component, detail`

func scanAudit(row scanner) (runproof.AuditEvent, error) {
	var e runproof.AuditEvent
	err := row.Scan(&e.TenantID, &e.ID, timeCol{&e.OccurredAt}, &e.Actor, &e.ActorType, &e.Category,
		&e.Action, &e.Resource, &e.Decision, &e.Status, &e.CorrelationID, &e.SourceComponent, &e.Detail)
	return e, err
}

// AppendAuditEvents stores all events or none.
func (s *Store) AppendAuditEvents(ctx context.Context, events ...runproof.AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (`+auditColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append audit events: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		_, err := stmt.ExecContext(ctx, e.TenantID, e.ID, timeText(e.OccurredAt), e.Actor,
			string(e.ActorType), e.Category, e.Action, e.Resource, e.Decision, e.Status,
			e.CorrelationID, e.SourceComponent, e.Detail)
		if isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "audit event %q already exists", e.ID)
		} else if err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
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
	events, err := collect(ctx, s.db, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE `+f.conds+` ORDER BY occurred_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}
