package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

var _ runproof.LedgerStore = (*Store)(nil)

const ledgerEntryColumns = `tenant_id, idx, export_id, entry_type, data, created_at`

const ledgerCheckpointColumns = `tenant_id, tree_size, hash, note, verifier_key, created_at`

func scanLedgerEntry(row scanner) (runproof.LedgerEntry, error) {
	var e runproof.LedgerEntry
	err := row.Scan(&e.TenantID, &e.Index, &e.RecordID, &e.Type, &e.Data, timeCol{&e.CreatedAt})
	return e, err
}

func scanLedgerCheckpoint(row scanner) (runproof.LedgerCheckpoint, error) {
	var c runproof.LedgerCheckpoint
	var hash []byte
	err := row.Scan(&c.TenantID, &c.Size, &hash, &c.Note, &c.VerifierKey, timeCol{&c.CreatedAt})
	if err == nil && copy(c.Hash[:], hash) != runproof.LedgerHashSize {
		err = fmt.Errorf("checkpoint %d: hash of %d bytes", c.Size, len(hash))
	}
	return c, err
}

// AppendLedger runs fn and its writes in one transaction. Transactions of
// this store begin IMMEDIATE, taking SQLite's one write lock at BEGIN, so
// appends (from any process on the file) run one at a time and fn sees the
// log as the previous append left it.
//
// The store's other writes are safe from a crash of the process but not
// of the machine (synchronous NORMAL: the last ones may be rolled back by
// a power loss). An append is durable when it returns, and so is every
// write before it: its checkpoint may be handed out at once, in a ZIP's
// proof.json, and a checkpoint rolled back under its holder would look
// like the ledger rewritten.
func (s *Store) AppendLedger(ctx context.Context, tenantID string, fn func(runproof.LedgerState) (runproof.LedgerAppend, error)) error {
	conn, err := s.writer(ctx, ordinary, "append ledger") // held for the pragmas and the transaction
	if err != nil {
		return err
	}
	defer conn.Close()
	defer normalSync(conn.Conn) // also when setting FULL took effect but reported ctx's end
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return fmt.Errorf("append ledger: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append ledger: %w", err)
	}
	defer tx.Rollback()

	st, err := ledgerState(ctx, tx, tenantID)
	if err != nil {
		return err
	}
	change, err := fn(st)
	if err != nil {
		return err
	}
	if err := writeLedger(ctx, tx, tenantID, change); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append ledger: %w", err)
	}
	return nil
}

// normalSync sets the writer back to synchronous NORMAL after a ledger
// append. A transaction whose context ended is rolled back on a goroutine
// of database/sql's, and SQLite refuses the setting until it is: it is
// tried again, for a second at most.
func normalSync(conn *sql.Conn) {
	for range 100 {
		if _, err := conn.ExecContext(context.Background(), `PRAGMA synchronous = NORMAL`); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ledgerState reads what an append starts from, in its transaction.
func ledgerState(ctx context.Context, tx *sql.Tx, tenantID string) (runproof.LedgerState, error) {
	var st runproof.LedgerState
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(idx) + 1, 0) FROM ledger_entries WHERE tenant_id = ?`,
		tenantID).Scan(&st.Size); err != nil {
		return st, fmt.Errorf("append ledger: size: %w", err)
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

// writeLedger inserts an append's rows: its entries (an audit event's
// entry ends its wait), hashes and checkpoint.
func writeLedger(ctx context.Context, tx *sql.Tx, tenantID string, change runproof.LedgerAppend) error {
	for _, e := range change.Entries {
		_, err := tx.ExecContext(ctx, `INSERT INTO ledger_entries (`+ledgerEntryColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
			tenantID, e.Index, e.RecordID, e.Type, e.Data, timeText(e.CreatedAt))
		if isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "ledger entry %d or the %s entry of %q is already in the ledger", e.Index, e.Type, e.RecordID)
		} else if err != nil {
			return fmt.Errorf("append ledger: entry: %w", err)
		}
		if e.Type == runproof.AuditEntryType {
			if _, err := tx.ExecContext(ctx, `DELETE FROM audit_unsealed WHERE tenant_id = ? AND id = ?`, tenantID, e.RecordID); err != nil {
				return fmt.Errorf("append ledger: sealed audit event: %w", err)
			}
		}
		if r := e.Seals; r != nil { // a run's steps sealed so far; sealed to its last, it waits no more
			if _, err := tx.ExecContext(ctx, `INSERT INTO run_seals (tenant_id, run_id, sealed_steps) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id, run_id) DO UPDATE SET sealed_steps = max(sealed_steps, excluded.sealed_steps)`,
				tenantID, r.RunID, r.To); err != nil {
				return fmt.Errorf("append ledger: sealed steps: %w", err)
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM steps_unsealed WHERE tenant_id = ?1 AND run_id = ?2
				AND (SELECT steps FROM runs WHERE tenant_id = ?1 AND id = ?2)
					<= (SELECT sealed_steps FROM run_seals WHERE tenant_id = ?1 AND run_id = ?2)`,
				tenantID, r.RunID); err != nil {
				return fmt.Errorf("append ledger: sealed steps: %w", err)
			}
		}
	}
	for _, h := range change.Hashes {
		_, err := tx.ExecContext(ctx, `INSERT INTO ledger_hashes (tenant_id, idx, hash) VALUES (?, ?, ?)`,
			tenantID, h.Index, h.Hash[:])
		if isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "ledger hash %d is already stored", h.Index)
		} else if err != nil {
			return fmt.Errorf("append ledger: hash: %w", err)
		}
	}
	c := change.Checkpoint
	_, err := tx.ExecContext(ctx, `INSERT INTO ledger_checkpoints (`+ledgerCheckpointColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		tenantID, c.Size, c.Hash[:], c.Note, c.VerifierKey, timeText(c.CreatedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "ledger checkpoint %d already exists", c.Size)
	} else if err != nil {
		return fmt.Errorf("append ledger: checkpoint: %w", err)
	}
	return nil
}

func latestCheckpoint(ctx context.Context, q querier, tenantID string) (runproof.LedgerCheckpoint, error) {
	c, err := scanLedgerCheckpoint(q.QueryRowContext(ctx, `SELECT `+ledgerCheckpointColumns+`
		FROM ledger_checkpoints WHERE tenant_id = ? ORDER BY tree_size DESC LIMIT 1`, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
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
	scan := func(r scanner) (row, error) {
		var v row
		return v, r.Scan(&v.idx, &v.hash)
	}
	var rows []row
	var err error
	if first, last := indexes[0], indexes[len(indexes)-1]; last-first == int64(len(indexes)-1) && slices.IsSorted(indexes) {
		// Consecutive indexes, as Verify reads them: one range scan.
		rows, err = collect(ctx, q, scan, `SELECT idx, hash FROM ledger_hashes
			WHERE tenant_id = ? AND idx >= ? AND idx <= ?`, tenantID, first, last)
	} else {
		var list []byte
		if list, err = json.Marshal(indexes); err == nil { // one parameter, however many indexes
			rows, err = collect(ctx, q, scan, `SELECT idx, hash FROM ledger_hashes
				WHERE tenant_id = ? AND idx IN (SELECT value FROM json_each(?))`, tenantID, string(list))
		}
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
	out, err := collect(ctx, s.db, scanLedgerEntry, `SELECT `+ledgerEntryColumns+` FROM ledger_entries
		WHERE tenant_id = ? AND idx >= ? AND idx < ? ORDER BY idx`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger entries: %w", err)
	}
	return out, nil
}

// FirstRepeatedLedgerEntry returns the lowest index of an entry whose
// export and type an earlier entry has too, or -1. The repeated exports
// and types are found in the unique index alone; only their entries are
// read.
func (s *Store) FirstRepeatedLedgerEntry(ctx context.Context, tenantID string) (int64, error) {
	var idx int64
	err := s.db.QueryRowContext(ctx, `WITH r AS (SELECT export_id, entry_type FROM ledger_entries
			WHERE tenant_id = ?1 GROUP BY export_id, entry_type HAVING COUNT(*) > 1)
		SELECT COALESCE(MIN(e.idx), -1) FROM r CROSS JOIN ledger_entries e
		WHERE e.tenant_id = ?1 AND e.export_id = r.export_id AND e.entry_type = r.entry_type
			AND e.idx > (SELECT MIN(f.idx) FROM ledger_entries f
				WHERE f.tenant_id = ?1 AND f.export_id = r.export_id AND f.entry_type = r.entry_type)`, tenantID).Scan(&idx)
	if err != nil {
		return 0, fmt.Errorf("repeated ledger entries: %w", err)
	}
	return idx, nil
}

// LedgerRecords returns the entries with index in [from, to) with their
// export records: one query for the entries and their requests, one for
// the events the leaves show (all but deliveries).
func (s *Store) LedgerRecords(ctx context.Context, tenantID string, from, to int64) ([]runproof.LedgerRecord, error) {
	recs, err := collect(ctx, s.db, scanLedgerRecord, `SELECT l.idx, l.export_id, l.entry_type, l.data, x.id IS NOT NULL,
		coalesce(x.scope, ''), coalesce(x.run_id, ''), coalesce(x.incident_id, ''), coalesce(x.bundle_type, ''),
		coalesce(x.format, ''), coalesce(x.requested_by, ''), coalesce(x.origin, ''), coalesce(x.source_component, ''),
		coalesce(x.correlation_id, ''), coalesce(x.export_reason, ''), x.period_start, x.period_end, x.created_at
		FROM ledger_entries l LEFT JOIN exports x ON x.tenant_id = l.tenant_id AND x.id = l.export_id
		WHERE l.tenant_id = ?1 AND l.idx >= ?2 AND l.idx < ?3 ORDER BY l.idx`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger records: %w", err)
	}
	events, err := collect(ctx, s.db, scanLeafEvent, `SELECT `+leafEventColumns+` FROM export_events
		WHERE tenant_id = ?1 AND kind <> 'delivered' AND export_id IN (SELECT export_id FROM ledger_entries
			WHERE tenant_id = ?1 AND idx >= ?2 AND idx < ?3)`, tenantID, from, to)
	if err != nil {
		return nil, fmt.Errorf("ledger records: %w", err)
	}
	return runproof.FoldLedgerRecords(tenantID, recs, events), nil
}

// scanLedgerRecord scans an entry and its export request, if it has one.
func scanLedgerRecord(row scanner) (runproof.LedgerRecord, error) {
	var rec runproof.LedgerRecord
	var x runproof.ExportRequest
	var found bool
	var createdAt *time.Time
	err := row.Scan(&rec.Index, &rec.RecordID, &rec.Type, &rec.Data, &found,
		&x.Scope, &x.RunID, &x.IncidentID, &x.BundleType, &x.Format, &x.RequestedBy, &x.Origin, &x.SourceComponent,
		&x.CorrelationID, &x.ExportReason, nullTimeCol{&x.PeriodStart}, nullTimeCol{&x.PeriodEnd}, nullTimeCol{&createdAt})
	if err == nil && found {
		if createdAt == nil {
			return rec, fmt.Errorf("export %s has no created_at", rec.RecordID)
		}
		x.ID, x.CreatedAt = rec.RecordID, *createdAt
		rec.Export = &runproof.Export{ExportRequest: x}
	}
	return rec, err
}

// LedgerEntryByRecord returns the entry of a type of a record.
func (s *Store) LedgerEntryByRecord(ctx context.Context, tenantID, recordID, entryType string) (runproof.LedgerEntry, error) {
	e, err := scanLedgerEntry(s.db.QueryRowContext(ctx, `SELECT `+ledgerEntryColumns+` FROM ledger_entries
		WHERE tenant_id = ? AND export_id = ? AND entry_type = ?`, tenantID, recordID, entryType))
	if errors.Is(err, sql.ErrNoRows) {
		return e, runproof.Errorf(runproof.ENOTFOUND, "%q has no %s entry in the ledger", recordID, entryType)
	} else if err != nil {
		return e, fmt.Errorf("ledger entry: %w", err)
	}
	return e, nil
}

// LedgerHashes returns stored hashes in the order asked.
func (s *Store) LedgerHashes(ctx context.Context, tenantID string, indexes []int64) ([][runproof.LedgerHashSize]byte, error) {
	return readHashes(ctx, s.db, tenantID, indexes)
}

// LedgerCheckpoint returns the checkpoint of a size, or the latest.
func (s *Store) LedgerCheckpoint(ctx context.Context, tenantID string, size int64) (runproof.LedgerCheckpoint, error) {
	if size == 0 {
		return latestCheckpoint(ctx, s.db, tenantID)
	}
	c, err := scanLedgerCheckpoint(s.db.QueryRowContext(ctx, `SELECT `+ledgerCheckpointColumns+`
		FROM ledger_checkpoints WHERE tenant_id = ? AND tree_size = ?`, tenantID, size))
	if errors.Is(err, sql.ErrNoRows) {
		return c, runproof.Errorf(runproof.ENOTFOUND, "the ledger has no checkpoint of size %d", size)
	} else if err != nil {
		return c, fmt.Errorf("ledger checkpoint: %w", err)
	}
	return c, nil
}

// LedgerCheckpoints returns checkpoints of size above after, smallest first.
func (s *Store) LedgerCheckpoints(ctx context.Context, tenantID string, after int64, limit int) ([]runproof.LedgerCheckpoint, error) {
	out, err := collect(ctx, s.db, scanLedgerCheckpoint, `SELECT `+ledgerCheckpointColumns+`
		FROM ledger_checkpoints WHERE tenant_id = ? AND tree_size > ? ORDER BY tree_size`+page(limit, 0),
		tenantID, after)
	if err != nil {
		return nil, fmt.Errorf("ledger checkpoints: %w", err)
	}
	return out, nil
}

// scanString scans a row of one text column.
func scanString(r scanner) (string, error) {
	var t string
	return t, r.Scan(&t)
}

// LedgerTenants lists the tenants that have a ledger.
func (s *Store) LedgerTenants(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.db, scanString, `SELECT DISTINCT tenant_id FROM ledger_checkpoints ORDER BY tenant_id`)
	if err != nil {
		return nil, fmt.Errorf("ledger tenants: %w", err)
	}
	return out, nil
}

// StepsToSeal returns runs whose steps go beyond those sealed.
func (s *Store) StepsToSeal(ctx context.Context, tenantID, after string, limit int) ([]runproof.RunSeal, error) {
	out, err := collect(ctx, s.db, scanRunSeal, `SELECT r.id, coalesce(x.sealed_steps, 0), r.steps
		FROM steps_unsealed u JOIN runs r ON r.tenant_id = u.tenant_id AND r.id = u.run_id
		LEFT JOIN run_seals x ON x.tenant_id = u.tenant_id AND x.run_id = u.run_id
		WHERE u.tenant_id = ? AND u.run_id > ? AND r.steps > coalesce(x.sealed_steps, 0) ORDER BY u.run_id LIMIT ?`,
		tenantID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("steps to seal: %w", err)
	}
	return out, nil
}

// StepsSealed returns runs with steps or sealed steps, and how far each
// is sealed; a seal whose run is gone counts as a run of no steps.
func (s *Store) StepsSealed(ctx context.Context, tenantID, after string, limit int) ([]runproof.RunSeal, error) {
	out, err := collect(ctx, s.db, scanRunSeal, `SELECT id, max(sealed), max(steps) FROM (
			SELECT id, 0 AS sealed, steps FROM runs WHERE tenant_id = ?1 AND id > ?2 AND steps > 0
			UNION ALL SELECT run_id, sealed_steps, 0 FROM run_seals WHERE tenant_id = ?1 AND run_id > ?2)
		GROUP BY id ORDER BY id LIMIT ?3`, tenantID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sealed steps: %w", err)
	}
	return out, nil
}

// StepsTenantsToSeal lists the tenants with runs whose steps go beyond
// those sealed.
func (s *Store) StepsTenantsToSeal(ctx context.Context) ([]string, error) {
	out, err := collect(ctx, s.db, scanString, `SELECT DISTINCT u.tenant_id
		FROM steps_unsealed u JOIN runs r ON r.tenant_id = u.tenant_id AND r.id = u.run_id
		LEFT JOIN run_seals x ON x.tenant_id = u.tenant_id AND x.run_id = u.run_id
		WHERE r.steps > coalesce(x.sealed_steps, 0) ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("tenants with steps to seal: %w", err)
	}
	return out, nil
}

func scanRunSeal(row scanner) (runproof.RunSeal, error) {
	var r runproof.RunSeal
	return r, row.Scan(&r.RunID, &r.Sealed, &r.Stored)
}
