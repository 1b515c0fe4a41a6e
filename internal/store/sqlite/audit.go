package sqlite

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

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
	w, err := s.writer(ctx, urgent, "append audit events")
	if err != nil {
		return err
	}
	defer w.Close()
	tx, err := w.BeginTx(ctx, nil)
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
		// It waits for its ledger entry.
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_unsealed (tenant_id, id, occurred_at) VALUES (?, ?, ?)`,
			e.TenantID, e.ID, timeText(e.OccurredAt)); err != nil {
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
	query, args := auditListQuery(p)
	events, err := collect(ctx, s.db, scanAudit, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return events, nil
}

// auditListQuery is the query of ListAuditEvents. A category's events are
// read through their own index: SQLite's planner takes the tenant's, in
// the order asked, and then reads every event of the tenant to find a few.
func auditListQuery(p runproof.ListAuditParams) (string, []any) {
	var f filter
	from := "audit_events"
	f.add("tenant_id = ?", p.TenantID)
	if p.Category != "" {
		from += " INDEXED BY audit_category"
		f.add("category = ?", p.Category)
	}
	if p.System {
		f.add("(source_component <> 'api' OR actor = 'system')") // as audit_system's WHERE, for SQLite to use it
	}
	f.timeRange("occurred_at", p.From, p.To)
	return `SELECT ` + auditColumns + ` FROM ` + from + ` WHERE ` + f.conds + ` ORDER BY occurred_at DESC, id DESC` + page(p.Limit, p.Offset), f.args
}

// LedgerAuditEvents returns the audit events of the ledger's audit entries
// of index in [from, to).
func (s *Store) LedgerAuditEvents(ctx context.Context, tenantID string, from, to int64) ([]runproof.AuditEvent, error) {
	events, err := collect(ctx, s.db, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = ? AND id IN (SELECT export_id FROM ledger_entries
			WHERE tenant_id = ? AND idx >= ? AND idx < ? AND entry_type = ?)`,
		tenantID, tenantID, from, to, runproof.AuditEntryType)
	if err != nil {
		return nil, fmt.Errorf("ledger audit events: %w", err)
	}
	return events, nil
}

// AuditEventsToSeal returns audit events that wait for their ledger entry,
// oldest first.
func (s *Store) AuditEventsToSeal(ctx context.Context, tenantID string, limit int) ([]runproof.AuditEvent, error) {
	ids, err := collect(ctx, s.db, scanString, `SELECT id FROM audit_unsealed WHERE tenant_id = ?
		ORDER BY occurred_at, id`+page(limit, 0), tenantID)
	if err != nil {
		return nil, fmt.Errorf("audit events to seal: %w", err)
	}
	idList, err := json.Marshal(ids) // one parameter, however many
	if err != nil {
		return nil, fmt.Errorf("audit events to seal: %w", err)
	}
	// Sorted here, not by SQLite: asked to, its planner may walk every
	// event of the tenant in audit_occurred's order rather than look up
	// the few asked for by their key.
	events, err := collect(ctx, s.db, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = ? AND id IN (SELECT value FROM json_each(?))`, tenantID, string(idList))
	if err == nil {
		err = runproof.MissingAuditEvents(ids, events)
	}
	if err != nil {
		return nil, fmt.Errorf("audit events to seal: %w", err)
	}
	slices.SortFunc(events, func(a, b runproof.AuditEvent) int {
		return cmp.Or(a.OccurredAt.Compare(b.OccurredAt), strings.Compare(a.ID, b.ID))
	})
	return events, nil
}

// AuditTenantsToSeal lists the tenants with audit events to seal.
func (s *Store) AuditTenantsToSeal(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.db, scanString, `SELECT DISTINCT tenant_id FROM audit_unsealed ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("audit tenants to seal: %w", err)
	}
	return out, nil
}

// AuditEventsMissingFromLedger returns audit events that neither are in
// the ledger nor wait for it. Their ids are a set difference, one pass over
// each table.
func (s *Store) AuditEventsMissingFromLedger(ctx context.Context, tenantID string, limit int) ([]runproof.AuditEvent, error) {
	ids, err := collect(ctx, s.db, scanString, `SELECT id FROM audit_events WHERE tenant_id = ?
		EXCEPT SELECT id FROM audit_unsealed WHERE tenant_id = ?
		EXCEPT SELECT export_id FROM ledger_entries WHERE tenant_id = ? AND entry_type = ?`,
		tenantID, tenantID, tenantID, runproof.AuditEntryType)
	if err != nil {
		return nil, fmt.Errorf("audit events missing from the ledger: %w", err)
	}
	idList, err := json.Marshal(ids) // one parameter, however many
	if err != nil {
		return nil, fmt.Errorf("audit events missing from the ledger: %w", err)
	}
	events, err := collect(ctx, s.db, scanAudit, `SELECT `+auditColumns+` FROM audit_events
		WHERE tenant_id = ? AND id IN (SELECT value FROM json_each(?))
		ORDER BY occurred_at, id`+page(limit, 0), tenantID, string(idList))
	if err != nil {
		return nil, fmt.Errorf("audit events missing from the ledger: %w", err)
	}
	return events, nil
}
