package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

var _ runproof.LedgerStore = (*Store)(nil)

const ledgerEntryColumns = `tenant_id, idx, export_id, entry_type, data, created_at`

const ledgerCheckpointColumns = `tenant_id, tree_size, hash, note, verifier_key, created_at`

func scanLedgerEntry(row pgx.Row) (runproof.LedgerEntry, error) {
	var e runproof.LedgerEntry
	err := row.Scan(&e.TenantID, &e.Index, &e.RecordID, &e.Type, &e.Data, &e.CreatedAt)
	e.CreatedAt = runproof.Timestamp(e.CreatedAt)
	return e, err
}

func scanLedgerCheckpoint(row pgx.Row) (runproof.LedgerCheckpoint, error) {
	var c runproof.LedgerCheckpoint
	var hash []byte
	err := row.Scan(&c.TenantID, &c.Size, &hash, &c.Note, &c.VerifierKey, &c.CreatedAt)
	c.CreatedAt = runproof.Timestamp(c.CreatedAt)
	if err == nil && copy(c.Hash[:], hash) != runproof.LedgerHashSize {
		err = fmt.Errorf("checkpoint %d: hash of %d bytes", c.Size, len(hash))
	}
	return c, err
}

// AppendLedger runs fn and its writes in one transaction holding a
// transaction-scoped advisory lock named after the schema and the tenant:
// appends to one tenant's log wait for each other, from every pool and
// every server on the database, and each one reads (in READ COMMITTED,
// after taking the lock) what the previous one committed. Reads never wait.
func (s *Store) AppendLedger(ctx context.Context, tenantID string, fn func(runproof.LedgerState) (runproof.LedgerAppend, error)) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(
			hashtextextended('runproof ledger ' || current_schema() || ' ' || $1, 0))`, tenantID); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		st, err := ledgerState(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		change, err := fn(st)
		if err != nil {
			return &fnError{err}
		}
		return writeLedger(ctx, tx, tenantID, change)
	})
	var fe *fnError
	switch {
	case errors.As(err, &fe):
		return fe.err
	case isUnique(err):
		return runproof.Errorf(runproof.ECONFLICT, "an entry, hash or checkpoint of this append is already in the ledger")
	case err != nil:
		return fmt.Errorf("append ledger: %w", err)
	}
	return nil
}

// fnError carries the error of AppendLedger's function out unchanged.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// ledgerState reads what an append starts from, in its transaction.
func ledgerState(ctx context.Context, tx pgx.Tx, tenantID string) (runproof.LedgerState, error) {
	var st runproof.LedgerState
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM ledger_entries WHERE tenant_id = $1`,
		tenantID).Scan(&st.Size); err != nil {
		return st, fmt.Errorf("size: %w", err)
	}
	latest, err := latestCheckpoint(ctx, tx, tenantID)
	switch {
	case err == nil:
		st.Latest = &latest
	case runproof.ErrorCode(err) != runproof.ENOTFOUND:
		return st, err
	}
	st.ReadHashes = func(indexes []int64) ([][runproof.LedgerHashSize]byte, error) {
		return readHashes(ctx, tx, tenantID, indexes)
	}
	return st, nil
}

// writeLedger inserts an append's rows, each table in one statement: its
// entries (an audit event's entry ends its wait), hashes and checkpoint.
func writeLedger(ctx context.Context, tx pgx.Tx, tenantID string, change runproof.LedgerAppend) error {
	n := len(change.Entries)
	idx, ids, types, data, created := make([]int64, n), make([]string, n), make([]string, n), make([][]byte, n), make([]time.Time, n)
	for i, e := range change.Entries {
		idx[i], ids[i], types[i], data[i], created[i] = e.Index, e.RecordID, e.Type, e.Data, runproof.Timestamp(e.CreatedAt)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_entries (`+ledgerEntryColumns+`)
		SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bytea[], $6::timestamptz[])`,
		tenantID, idx, ids, types, data, created); err != nil {
		return err
	}
	var sealed []string // audit events that no longer wait
	for _, e := range change.Entries {
		if e.Type == runproof.AuditEntryType {
			sealed = append(sealed, e.RecordID)
		}
	}
	if len(sealed) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM audit_unsealed u USING unnest($2::text[]) AS s(id)
			WHERE u.tenant_id = $1 AND u.id = s.id`, tenantID, sealed); err != nil {
			return err
		}
	}
	if err := sealRuns(ctx, tx, tenantID, change.Entries); err != nil {
		return err
	}
	hidx, hashes := make([]int64, len(change.Hashes)), make([][]byte, len(change.Hashes))
	for i, h := range change.Hashes {
		hidx[i], hashes[i] = h.Index, h.Hash[:]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO ledger_hashes (tenant_id, idx, hash)
		SELECT $1, * FROM unnest($2::bigint[], $3::bytea[])`, tenantID, hidx, hashes); err != nil {
		return err
	}
	c := change.Checkpoint
	_, err := tx.Exec(ctx, `INSERT INTO ledger_checkpoints (`+ledgerCheckpointColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		tenantID, c.Size, c.Hash[:], c.Note, c.VerifierKey, runproof.Timestamp(c.CreatedAt))
	return err
}

// sealRuns counts the steps of the runs the entries seal sealed as far as
// they go, never fewer than before, a statement for all of them. A run
// sealed to its last step waits no more: the runs are share-locked first,
// in id order, which waits for a transaction adding steps to one (UpdateRun
// locks its run first) and keeps the next one waiting until this one
// commits, so a step is never added unseen.
func sealRuns(ctx context.Context, tx pgx.Tx, tenantID string, entries []runproof.LedgerEntry) error {
	upTo := map[string]int64{} // an append may seal two ranges of one run
	for _, e := range entries {
		if r := e.Seals; r != nil {
			upTo[r.RunID] = max(upTo[r.RunID], r.To)
		}
	}
	if len(upTo) == 0 {
		return nil
	}
	runs := slices.Sorted(maps.Keys(upTo))
	to := make([]int64, len(runs))
	for i, id := range runs {
		to[i] = upTo[id]
	}
	if _, err := tx.Exec(ctx, `INSERT INTO run_seals (tenant_id, run_id, sealed_steps)
		SELECT $1, * FROM unnest($2::text[], $3::bigint[])
		ON CONFLICT (tenant_id, run_id) DO UPDATE SET sealed_steps = GREATEST(run_seals.sealed_steps, excluded.sealed_steps)`,
		tenantID, runs, to); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT id FROM runs WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id FOR SHARE`,
		tenantID, runs); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `DELETE FROM steps_unsealed u USING runs r, run_seals x
		WHERE u.tenant_id = $1 AND u.run_id = ANY($2)
			AND r.tenant_id = u.tenant_id AND r.id = u.run_id AND x.tenant_id = u.tenant_id AND x.run_id = u.run_id
			AND r.steps <= x.sealed_steps`, tenantID, runs)
	return err
}

func latestCheckpoint(ctx context.Context, q querier, tenantID string) (runproof.LedgerCheckpoint, error) {
	c, err := scanLedgerCheckpoint(q.QueryRow(ctx, `SELECT `+ledgerCheckpointColumns+`
		FROM ledger_checkpoints WHERE tenant_id = $1 ORDER BY tree_size DESC LIMIT 1`, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, runproof.Errorf(runproof.ENOTFOUND, "the ledger of tenant %q has no checkpoint yet", tenantID)
	} else if err != nil {
		return c, fmt.Errorf("ledger checkpoint: %w", err)
	}
	return c, nil
}

// readHashes reads stored hashes in one query, whatever their number.
func readHashes(ctx context.Context, q querier, tenantID string, indexes []int64) ([][runproof.LedgerHashSize]byte, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	type row struct {
		idx  int64
		hash []byte
	}
	scan := func(r pgx.Row) (row, error) {
		var v row
		return v, r.Scan(&v.idx, &v.hash)
	}
	var rows []row
	var err error
	if first, last := indexes[0], indexes[len(indexes)-1]; last-first == int64(len(indexes)-1) && slices.IsSorted(indexes) {
		// Consecutive indexes, as Verify reads them: one range scan.
		rows, err = collect(ctx, q, scan, `SELECT idx, hash FROM ledger_hashes
			WHERE tenant_id = $1 AND idx >= $2 AND idx <= $3`, tenantID, first, last)
	} else {
		rows, err = collect(ctx, q, scan, `SELECT idx, hash FROM ledger_hashes
			WHERE tenant_id = $1 AND idx = ANY($2::bigint[])`, tenantID, indexes)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger hashes: %w", err)
	}
	found := make(map[int64][]byte, len(rows))
	for _, r := range rows {
		found[r.idx] = r.hash
	}
	return runproof.OrderLedgerHashes(tenantID, indexes, found)
}

// LedgerEntries returns the entries with index in [from, to).
func (s *Store) LedgerEntries(ctx context.Context, tenantID string, from, to int64) ([]runproof.LedgerEntry, error) {
	out, err := collect(ctx, s.pool, scanLedgerEntry, `SELECT `+ledgerEntryColumns+` FROM ledger_entries
		WHERE tenant_id = $1 AND idx >= $2 AND idx < $3 ORDER BY idx`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger entries: %w", err)
	}
	return out, nil
}

// FirstRepeatedLedgerEntry returns the lowest index of an entry whose
// export and type an earlier entry has too, or -1.
func (s *Store) FirstRepeatedLedgerEntry(ctx context.Context, tenantID string) (int64, error) {
	var idx int64
	err := s.pool.QueryRow(ctx, `SELECT COALESCE(MIN(e.idx), -1) FROM ledger_entries e JOIN (
		SELECT export_id, entry_type, MIN(idx) AS first FROM ledger_entries WHERE tenant_id = $1
		GROUP BY export_id, entry_type HAVING COUNT(*) > 1) AS r USING (export_id, entry_type)
		WHERE e.tenant_id = $1 AND e.idx > r.first`, tenantID).Scan(&idx)
	if err != nil {
		return 0, fmt.Errorf("repeated ledger entries: %w", err)
	}
	return idx, nil
}

// LedgerRecords returns the entries with index in [from, to) with their
// export records: one query for the entries and their requests, one for
// the events the leaves show (all but deliveries).
func (s *Store) LedgerRecords(ctx context.Context, tenantID string, from, to int64) ([]runproof.LedgerRecord, error) {
	recs, err := collect(ctx, s.pool, scanLedgerRecord, `SELECT l.idx, l.export_id, l.entry_type, l.data, x.id IS NOT NULL,
		coalesce(x.scope, ''), coalesce(x.run_id, ''), coalesce(x.incident_id, ''), coalesce(x.bundle_type, ''),
		coalesce(x.format, ''), coalesce(x.requested_by, ''), coalesce(x.origin, ''), coalesce(x.source_component, ''),
		coalesce(x.correlation_id, ''), coalesce(x.export_reason, ''), x.period_start, x.period_end, x.created_at
		FROM ledger_entries l LEFT JOIN exports x ON x.tenant_id = l.tenant_id AND x.id = l.export_id
		WHERE l.tenant_id = $1 AND l.idx >= $2 AND l.idx < $3 ORDER BY l.idx`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger records: %w", err)
	}
	events, err := collect(ctx, s.pool, scanLeafEvent, `SELECT `+leafEventColumns+` FROM export_events
		WHERE tenant_id = $1 AND kind <> 'delivered' AND export_id IN (SELECT export_id FROM ledger_entries
			WHERE tenant_id = $1 AND idx >= $2 AND idx < $3)`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger records: %w", err)
	}
	return runproof.FoldLedgerRecords(tenantID, recs, events), nil
}

// scanLedgerRecord scans an entry and its export request, if it has one.
func scanLedgerRecord(row pgx.Row) (runproof.LedgerRecord, error) {
	var rec runproof.LedgerRecord
	var x runproof.ExportRequest
	var found bool
	var createdAt *time.Time
	err := row.Scan(&rec.Index, &rec.RecordID, &rec.Type, &rec.Data, &found,
		&x.Scope, &x.RunID, &x.IncidentID, &x.BundleType, &x.Format, &x.RequestedBy, &x.Origin, &x.SourceComponent,
		&x.CorrelationID, &x.ExportReason, &x.PeriodStart, &x.PeriodEnd, &createdAt)
	if err == nil && found {
		if createdAt == nil {
			return rec, fmt.Errorf("export %s has no created_at", rec.RecordID)
		}
		x.ID, x.CreatedAt = rec.RecordID, runproof.Timestamp(*createdAt)
		x.PeriodStart, x.PeriodEnd = utc(x.PeriodStart), utc(x.PeriodEnd)
		rec.Export = &runproof.Export{ExportRequest: x}
	}
	return rec, err
}

// LedgerEntryByRecord returns the entry of a type of a record.
func (s *Store) LedgerEntryByRecord(ctx context.Context, tenantID, recordID, entryType string) (runproof.LedgerEntry, error) {
	e, err := scanLedgerEntry(s.pool.QueryRow(ctx, `SELECT `+ledgerEntryColumns+` FROM ledger_entries
		WHERE tenant_id = $1 AND export_id = $2 AND entry_type = $3`, tenantID, recordID, entryType))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, runproof.Errorf(runproof.ENOTFOUND, "%q has no %s entry in the ledger", recordID, entryType)
	} else if err != nil {
		return e, fmt.Errorf("ledger entry: %w", err)
	}
	return e, nil
}

// LedgerHashes returns stored hashes in the order asked.
func (s *Store) LedgerHashes(ctx context.Context, tenantID string, indexes []int64) ([][runproof.LedgerHashSize]byte, error) {
	return readHashes(ctx, s.pool, tenantID, indexes)
}

// LedgerCheckpoint returns the checkpoint of a size, or the latest.
func (s *Store) LedgerCheckpoint(ctx context.Context, tenantID string, size int64) (runproof.LedgerCheckpoint, error) {
	if size == 0 {
		return latestCheckpoint(ctx, s.pool, tenantID)
	}
	c, err := scanLedgerCheckpoint(s.pool.QueryRow(ctx, `SELECT `+ledgerCheckpointColumns+`
		FROM ledger_checkpoints WHERE tenant_id = $1 AND tree_size = $2`, tenantID, size))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, runproof.Errorf(runproof.ENOTFOUND, "the ledger has no checkpoint of size %d", size)
	} else if err != nil {
		return c, fmt.Errorf("ledger checkpoint: %w", err)
	}
	return c, nil
}

// LedgerCheckpoints returns checkpoints of size above after, smallest first.
func (s *Store) LedgerCheckpoints(ctx context.Context, tenantID string, after int64, limit int) ([]runproof.LedgerCheckpoint, error) {
	q := `SELECT ` + ledgerCheckpointColumns + ` FROM ledger_checkpoints
		WHERE tenant_id = $1 AND tree_size > $2 ORDER BY tree_size` + page(limit, 0)
	out, err := collect(ctx, s.pool, scanLedgerCheckpoint, q, tenantID, after)
	if err != nil {
		return nil, fmt.Errorf("ledger checkpoints: %w", err)
	}
	return out, nil
}

// scanString scans a row of one text column.
func scanString(r pgx.Row) (string, error) {
	var t string
	return t, r.Scan(&t)
}

// LedgerTenants lists the tenants that have a ledger.
func (s *Store) LedgerTenants(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.pool, scanString, `SELECT DISTINCT tenant_id FROM ledger_checkpoints ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("ledger tenants: %w", err)
	}
	return out, nil
}

// StepsToSeal returns runs whose steps go beyond those sealed.
func (s *Store) StepsToSeal(ctx context.Context, tenantID, after string, limit int) ([]runproof.RunSeal, error) {
	out, err := collect(ctx, s.pool, scanRunSeal, `SELECT r.id, coalesce(x.sealed_steps, 0), r.steps
		FROM steps_unsealed u JOIN runs r ON r.tenant_id = u.tenant_id AND r.id = u.run_id
		LEFT JOIN run_seals x ON x.tenant_id = u.tenant_id AND x.run_id = u.run_id
		WHERE u.tenant_id = $1 AND u.run_id > $2 AND r.steps > coalesce(x.sealed_steps, 0) ORDER BY u.run_id LIMIT $3`,
		tenantID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("steps to seal: %w", err)
	}
	return out, nil
}

// StepsSealed returns runs with steps or sealed steps, and how far each
// is sealed; a seal whose run is gone counts as a run of no steps.
func (s *Store) StepsSealed(ctx context.Context, tenantID, after string, limit int) ([]runproof.RunSeal, error) {
	out, err := collect(ctx, s.pool, scanRunSeal, `SELECT id, max(sealed), max(steps) FROM (
			SELECT id, 0::bigint AS sealed, steps FROM runs WHERE tenant_id = $1 AND id > $2 AND steps > 0
			UNION ALL SELECT run_id, sealed_steps, 0 FROM run_seals WHERE tenant_id = $1 AND run_id > $2) u
		GROUP BY id ORDER BY id LIMIT $3`, tenantID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sealed steps: %w", err)
	}
	return out, nil
}

// StepsTenantsToSeal lists the tenants with runs whose steps go beyond
// those sealed.
func (s *Store) StepsTenantsToSeal(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.pool, scanString, `SELECT DISTINCT u.tenant_id
		FROM steps_unsealed u JOIN runs r ON r.tenant_id = u.tenant_id AND r.id = u.run_id
		LEFT JOIN run_seals x ON x.tenant_id = u.tenant_id AND x.run_id = u.run_id
		WHERE r.steps > coalesce(x.sealed_steps, 0) ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("tenants with steps to seal: %w", err)
	}
	return out, nil
}

func scanRunSeal(row pgx.Row) (runproof.RunSeal, error) {
	var r runproof.RunSeal
	return r, row.Scan(&r.RunID, &r.Sealed, &r.Stored)
}
