package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/runproof/runproof/internal/runproof"
)

var _ runproof.ExportStore = (*Store)(nil)

const exportColumns = `tenant_id, id, scope, run_id, incident_id, bundle_type, format,
	requested_by, origin, source_component, correlation_id, export_reason,
	period_start, period_end, created_at`

const exportEventColumns = `tenant_id, export_id, kind, at, checksum, size_bytes, bundle_id, artifact, reason,
	manifest_sha256, key_id, steps, remediation, steps_omitted, remediation_notes`

func scanExportRequest(row pgx.Row) (runproof.ExportRequest, error) {
	var r runproof.ExportRequest
	err := row.Scan(&r.TenantID, &r.ID, &r.Scope, &r.RunID, &r.IncidentID, &r.BundleType, &r.Format,
		&r.RequestedBy, &r.Origin, &r.SourceComponent, &r.CorrelationID, &r.ExportReason,
		&r.PeriodStart, &r.PeriodEnd, &r.CreatedAt)
	r.PeriodStart = utc(r.PeriodStart)
	r.PeriodEnd = utc(r.PeriodEnd)
	r.CreatedAt = runproof.Timestamp(r.CreatedAt)
	return r, err
}

func scanExportEvent(row pgx.Row) (runproof.ExportEvent, error) {
	var e runproof.ExportEvent
	err := row.Scan(&e.TenantID, &e.ExportID, &e.Kind, &e.At, &e.Checksum, &e.SizeBytes,
		&e.BundleID, &e.Artifact, &e.Reason, &e.ManifestSHA256, &e.KeyID, &e.Steps, &e.Remediation, &e.StepsOmitted, &e.RemediationNotesDigest)
	e.At = runproof.Timestamp(e.At)
	return e, err
}

// leafEventColumns are an event's columns that ledger leaves show.
const leafEventColumns = `export_id, kind, at, checksum, size_bytes, bundle_id, reason, manifest_sha256, key_id`

func scanLeafEvent(row pgx.Row) (runproof.ExportEvent, error) {
	var e runproof.ExportEvent
	err := row.Scan(&e.ExportID, &e.Kind, &e.At, &e.Checksum, &e.SizeBytes, &e.BundleID, &e.Reason,
		&e.ManifestSHA256, &e.KeyID)
	e.At = runproof.Timestamp(e.At)
	return e, err
}

// CreateExport stores the request of a new export.
func (s *Store) CreateExport(ctx context.Context, r runproof.ExportRequest) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO exports (`+exportColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		r.TenantID, r.ID, string(r.Scope), r.RunID, r.IncidentID, string(r.BundleType), string(r.Format),
		r.RequestedBy, string(r.Origin), r.SourceComponent, r.CorrelationID, r.ExportReason,
		nullTime(r.PeriodStart), nullTime(r.PeriodEnd), runproof.Timestamp(r.CreatedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "export %q already exists", r.ID)
	} else if err != nil {
		return fmt.Errorf("create export: %w", err)
	}
	return nil
}

// AppendExportEvent adds a lifecycle event. The database refuses a second
// event of a kind, a second completed-or-failed event (unique indexes) and an
// event of an export the tenant does not have (foreign key). seq is the
// order of appends, not of commits: migration 002 took a table lock for
// that, which no reader needs any more.
func (s *Store) AppendExportEvent(ctx context.Context, e runproof.ExportEvent) error {
	if err := e.CheckKind(); err != nil {
		return err
	}
	// A manifest is sealed once, before the export's end: sealed after it
	// (by a process that stalled past its lease while another recorded it
	// failed), it would change a record the ledger holds already. The
	// events of one export are appended in turn, under its record's lock,
	// each reading what the one before committed (read committed, whatever
	// the database's default).
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT FROM exports WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE`, e.TenantID, e.ExportID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO export_events (`+exportEventColumns+`)
			SELECT $1, $2, $3::text, $4::timestamptz, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
			WHERE $3::text <> 'sealed' OR NOT EXISTS (SELECT FROM export_events
				WHERE tenant_id = $1 AND export_id = $2 AND kind IN ('sealed', 'completed', 'failed'))`,
			e.TenantID, e.ExportID, e.Kind, runproof.Timestamp(e.At), e.Checksum, e.SizeBytes,
			e.BundleID, e.Artifact, e.Reason, e.ManifestSHA256, e.KeyID, e.Steps, e.Remediation, e.StepsOmitted, e.RemediationNotesDigest)
		if err == nil && tag.RowsAffected() == 0 {
			return runproof.SealedAfterError(e.ExportID)
		}
		return err
	})
	switch {
	case runproof.ErrorCode(err) == runproof.ECONFLICT:
		return err
	case isForeignKey(err):
		return runproof.Errorf(runproof.ENOTFOUND, "export %q not found", e.ExportID)
	case isUnique(err):
		return runproof.Errorf(runproof.ECONFLICT, "export %q already has a %s event or has already ended", e.ExportID, e.Kind)
	case err != nil:
		return fmt.Errorf("append export event: %w", err)
	}
	return nil
}

// isForeignKey reports whether err is a broken FOREIGN KEY constraint.
func isForeignKey(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && e.Code == "23503"
}

// GetExport returns one export, folded from its request and events.
func (s *Store) GetExport(ctx context.Context, tenantID, exportID string) (runproof.Export, error) {
	r, err := scanExportRequest(s.pool.QueryRow(ctx,
		`SELECT `+exportColumns+` FROM exports WHERE tenant_id = $1 AND id = $2`, tenantID, exportID))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.Export{}, runproof.Errorf(runproof.ENOTFOUND, "export %q not found", exportID)
	} else if err != nil {
		return runproof.Export{}, fmt.Errorf("get export: %w", err)
	}
	events, err := collect(ctx, s.pool, scanExportEvent, `SELECT `+exportEventColumns+` FROM export_events
		WHERE tenant_id = $1 AND export_id = $2 ORDER BY seq`, tenantID, exportID)
	if err != nil {
		return runproof.Export{}, fmt.Errorf("get export: %w", err)
	}
	return runproof.FoldExport(r, events), nil
}

// ListExports returns exports newest first: one query for the page of
// requests, one for all their events.
func (s *Store) ListExports(ctx context.Context, p runproof.ListExportsParams) ([]runproof.Export, error) {
	var f filter
	f.add("tenant_id = ?", p.TenantID)
	if p.RunID != "" {
		f.add("run_id = ?", p.RunID)
	}
	if p.IncidentID != "" {
		f.add("incident_id = ?", p.IncidentID)
	}
	f.timeRange("created_at", p.From, p.To)
	reqs, err := collect(ctx, s.pool, scanExportRequest, `SELECT `+exportColumns+` FROM exports
		WHERE `+f.conds+` ORDER BY created_at DESC, id DESC`+page(p.Limit, p.Offset), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	out, err := s.withEvents(ctx, p.TenantID, reqs)
	if err != nil {
		return nil, fmt.Errorf("list exports: %w", err)
	}
	return out, nil
}

// ExportsMissingFromLedger returns finished exports that have no export
// entry in the ledger: an export has one completed or failed event at
// most. Their ids are a set difference, which the planner cannot turn
// into a nested loop over both tables, whatever it knows of them.
func (s *Store) ExportsMissingFromLedger(ctx context.Context, tenantID string, before time.Time) ([]runproof.Export, error) {
	args, atBefore := []any{tenantID, runproof.ExportEntryType}, ""
	if !before.IsZero() {
		args, atBefore = append(args, runproof.Timestamp(before)), " AND at < $3"
	}
	return s.exportsOf(ctx, tenantID, "exports missing from the ledger", `SELECT export_id FROM export_events
		WHERE tenant_id = $1 AND kind IN ('completed', 'failed')`+atBefore+`
		EXCEPT SELECT export_id FROM ledger_entries WHERE tenant_id = $1 AND entry_type = $2`, args...)
}

// ExportTenantsFinishedSince lists the tenants with exports that ended in
// an event of seq above since, and the highest such seq. An identity is
// taken before its transaction commits, so an event may become visible
// below a seq already read: Ledger.Sync at recovery still finds it.
func (s *Store) ExportTenantsFinishedSince(ctx context.Context, since int64) ([]string, int64, error) {
	type last struct {
		tenant string
		seq    int64
	}
	rows, err := collect(ctx, s.pool, func(row pgx.Row) (last, error) {
		var l last
		return l, row.Scan(&l.tenant, &l.seq)
	}, `SELECT tenant_id, max(seq) FROM export_events WHERE seq > $1 AND kind IN ('completed', 'failed')
		GROUP BY tenant_id ORDER BY tenant_id`, since)
	if err != nil {
		return nil, since, fmt.Errorf("export tenants finished since: %w", err)
	}
	tenants, next := make([]string, len(rows)), since
	for i, r := range rows {
		tenants[i], next = r.tenant, max(next, r.seq)
	}
	return tenants, next, nil
}

// SealedExportsMissingFromLedger returns completed sealed exports that
// have no entry of entryType, a set difference as ExportsMissingFromLedger.
func (s *Store) SealedExportsMissingFromLedger(ctx context.Context, tenantID, entryType string) ([]runproof.Export, error) {
	return s.exportsOf(ctx, tenantID, "sealed exports missing from the ledger", `(SELECT export_id FROM export_events WHERE tenant_id = $1 AND kind = 'sealed'
		INTERSECT SELECT export_id FROM export_events WHERE tenant_id = $1 AND kind = 'completed')
		EXCEPT SELECT export_id FROM ledger_entries WHERE tenant_id = $1 AND entry_type = $2`, tenantID, entryType)
}

// LeaseExport records or renews an export's lease.
func (s *Store) LeaseExport(ctx context.Context, tenantID, exportID string, until time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO export_leases (tenant_id, export_id, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id, export_id) DO UPDATE SET expires_at = excluded.expires_at`, tenantID, exportID, runproof.Timestamp(until))
	if err != nil {
		return fmt.Errorf("lease export: %w", err)
	}
	return nil
}

// UnfinishedExports returns exports without a completed or failed event,
// created before createdBefore or whose lease ran out before leaseBefore.
func (s *Store) UnfinishedExports(ctx context.Context, tenantID string, createdBefore, leaseBefore time.Time) ([]runproof.Export, error) {
	return s.exportsOf(ctx, tenantID, "unfinished exports", `SELECT id FROM exports WHERE tenant_id = $1 AND created_at < $2
		UNION SELECT export_id FROM export_leases WHERE tenant_id = $1 AND expires_at < $3
		EXCEPT SELECT export_id FROM export_events WHERE tenant_id = $1 AND kind IN ('completed', 'failed')`,
		tenantID, runproof.Timestamp(createdBefore), runproof.Timestamp(leaseBefore))
}

// DropExportLeases removes the leases that ran out before a time.
func (s *Store) DropExportLeases(ctx context.Context, tenantID string, before time.Time) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM export_leases WHERE tenant_id = $1 AND expires_at < $2`, tenantID, runproof.Timestamp(before))
	if err != nil {
		return fmt.Errorf("drop export leases: %w", err)
	}
	return nil
}

// ExportTenants lists the tenants that have exports.
func (s *Store) ExportTenants(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.pool, scanString, `SELECT DISTINCT tenant_id FROM exports ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("export tenants: %w", err)
	}
	return out, nil
}

// exportsOf returns the exports whose ids idsQuery selects (what names
// them for errors), folded as GetExport folds them.
func (s *Store) exportsOf(ctx context.Context, tenantID, what, idsQuery string, args ...any) ([]runproof.Export, error) {
	ids, err := collect(ctx, s.pool, scanString, idsQuery, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := s.exportsByID(ctx, tenantID, ids)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// exportsByID reads the tenant's exports of the ids given, folded.
func (s *Store) exportsByID(ctx context.Context, tenantID string, ids []string) ([]runproof.Export, error) {
	reqs, err := collect(ctx, s.pool, scanExportRequest, `SELECT `+exportColumns+` FROM exports
		WHERE tenant_id = $1 AND id = ANY($2)`, tenantID, ids)
	if err != nil {
		return nil, err
	}
	return s.withEvents(ctx, tenantID, reqs)
}

// withEvents reads the events of export requests, in one query, and folds
// each request with its own, in the order of reqs.
func (s *Store) withEvents(ctx context.Context, tenantID string, reqs []runproof.ExportRequest) ([]runproof.Export, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.ID
	}
	events, err := collect(ctx, s.pool, scanExportEvent, `SELECT `+exportEventColumns+` FROM export_events
		WHERE tenant_id = $1 AND export_id = ANY($2) ORDER BY seq`, tenantID, ids)
	if err != nil {
		return nil, err
	}
	return runproof.FoldExports(reqs, events), nil
}
