package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/runproof/runproof/internal/runproof"
)

// CreateRun stores r and, unless stored already, its snapshot.
func (s *Store) CreateRun(ctx context.Context, r runproof.Run, snap runproof.Snapshot) error {
	policies, err := json.Marshal(snap.Policies)
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	w, err := s.writer(ctx, ordinary, "create run")
	if err != nil {
		return err
	}
	defer w.Close()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	defer tx.Rollback()
	// Runs started under the same policies share one snapshot.
	_, err = tx.ExecContext(ctx, `
		INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (tenant_id, id) DO NOTHING`,
		snap.TenantID, snap.ID, string(policies), timeText(snap.CreatedAt))
	if err != nil {
		return fmt.Errorf("create run: snapshot: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO runs (`+runColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.TenantID, r.ID, r.AgentID, r.Goal, r.TraceID, string(r.Status), r.SnapshotID,
		timeText(r.StartedAt), nullTimeText(r.StoppedAt), nullTimeText(r.CompletedAt),
		r.TerminationReason, r.IncidentID, r.Totals.Steps, r.Totals.InputTokens, r.Totals.OutputTokens,
		r.Totals.CostMicrocents, r.Totals.DurationMicros, timeText(r.CreatedAt), string(r.EndedAs), nullTimeText(r.EndRecordedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "run %q already exists", r.ID)
	} else if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	return nil
}

const runColumns = `tenant_id, id, agent_id, goal, trace_id, status, snapshot_id,
	started_at, stopped_at, completed_at, termination_reason, incident_id,
	steps, input_tokens, output_tokens, cost_microcents, duration_micros, created_at, ended_as, ended_recorded_at`

func scanRun(row scanner) (runproof.Run, error) {
	var r runproof.Run
	err := row.Scan(&r.TenantID, &r.ID, &r.AgentID, &r.Goal, &r.TraceID, &r.Status, &r.SnapshotID,
		timeCol{&r.StartedAt}, nullTimeCol{&r.StoppedAt}, nullTimeCol{&r.CompletedAt},
		&r.TerminationReason, &r.IncidentID, &r.Totals.Steps, &r.Totals.InputTokens,
		&r.Totals.OutputTokens, &r.Totals.CostMicrocents, &r.Totals.DurationMicros,
		timeCol{&r.CreatedAt}, &r.EndedAs, nullTimeCol{&r.EndRecordedAt})
	return r, err
}

func getRun(ctx context.Context, db querier, tenantID, runID string) (runproof.Run, error) {
	r, err := scanRun(db.QueryRowContext(ctx,
		`SELECT `+runColumns+` FROM runs WHERE tenant_id = ? AND id = ?`, tenantID, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.Run{}, runproof.Errorf(runproof.ENOTFOUND, "run %q not found", runID)
	} else if err != nil {
		return runproof.Run{}, fmt.Errorf("get run: %w", err)
	}
	return r, nil
}

// GetRun returns one run.
func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error) {
	return getRun(ctx, s.db, tenantID, runID)
}

// ListRuns returns runs newest first.
func (s *Store) ListRuns(ctx context.Context, p runproof.ListRunsParams) ([]runproof.Run, error) {
	query, args := runListQuery(p)
	runs, err := collect(ctx, s.db, scanRun, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

// runListQuery is the query of ListRuns and its arguments.
func runListQuery(p runproof.ListRunsParams) (string, []any) {
	var f filter
	f.add("tenant_id = ?", p.TenantID)
	if p.AgentID != "" {
		f.add("agent_id = ?", p.AgentID)
	}
	if p.Status != "" {
		f.add("status = ?", string(p.Status))
	}
	f.timeRange("started_at", p.From, p.To)
	if p.After != nil {
		f.add("(started_at, id) < (?, ?)", timeText(p.After.StartedAt), p.After.RunID)
	}
	return `SELECT ` + runColumns + ` FROM runs WHERE ` + f.conds + `
		ORDER BY started_at DESC, id DESC` + page(p.Limit, 0), f.args
}

func getSnapshot(ctx context.Context, db querier, tenantID, snapshotID string) (runproof.Snapshot, error) {
	var snap runproof.Snapshot
	var policies string
	err := db.QueryRowContext(ctx, `
		SELECT tenant_id, id, policies, created_at FROM policy_snapshots WHERE tenant_id = ? AND id = ?`,
		tenantID, snapshotID).Scan(&snap.TenantID, &snap.ID, &policies, timeCol{&snap.CreatedAt})
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.Snapshot{}, runproof.Errorf(runproof.ENOTFOUND, "policy snapshot %q not found", snapshotID)
	} else if err != nil {
		return runproof.Snapshot{}, fmt.Errorf("get snapshot: %w", err)
	}
	if err := json.Unmarshal([]byte(policies), &snap.Policies); err != nil {
		return runproof.Snapshot{}, fmt.Errorf("get snapshot: %w", err)
	}
	return snap, nil
}

// GetSnapshot returns one policy snapshot.
func (s *Store) GetSnapshot(ctx context.Context, tenantID, snapshotID string) (runproof.Snapshot, error) {
	return getSnapshot(ctx, s.db, tenantID, snapshotID)
}

// UpdateRun runs fn on the run's state and writes what it returns, all in
// one immediate transaction: SQLite has one writer at a time, so holding the
// write lock from BEGIN is what serialises concurrent updates of a run.
func (s *Store) UpdateRun(ctx context.Context, p runproof.UpdateRunParams, fn func(runproof.RunState) (runproof.RunChange, error)) error {
	w, err := s.writer(ctx, ordinary, "update run")
	if err != nil {
		return err
	}
	defer w.Close()
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	defer tx.Rollback()

	var st runproof.RunState
	if st.Run, err = getRun(ctx, tx, p.TenantID, p.RunID); err != nil {
		return err
	}
	if st.Snapshot, err = getSnapshot(ctx, tx, p.TenantID, st.Run.SnapshotID); err != nil {
		return err
	}
	if p.StepsFrom <= p.StepsTo {
		st.Existing, err = collect(ctx, tx, scanStep, `SELECT `+stepColumns+` FROM steps
			WHERE tenant_id = ? AND run_id = ? AND step_index BETWEEN ? AND ?
			ORDER BY step_index`, p.TenantID, p.RunID, p.StepsFrom, p.StepsTo)
		if err != nil {
			return fmt.Errorf("update run: steps: %w", err)
		}
	}

	if st.Run.IncidentID != "" {
		step, err := scanStep(tx.QueryRowContext(ctx, `SELECT `+stepColumns+` FROM steps WHERE tenant_id = ? AND run_id = ? AND step_index =
			(SELECT inflection_step_index FROM incidents WHERE tenant_id = ? AND id = ?)`, p.TenantID, p.RunID, p.TenantID, st.Run.IncidentID))
		if err != nil {
			return fmt.Errorf("update run: inflection step: %w", err)
		}
		st.Inflection = &step
	}

	change, err := fn(st)
	if err != nil {
		return err
	}

	if err := insertSteps(ctx, tx, p, st.Run.Totals, change.Steps); err != nil {
		return err
	}
	r := change.Run
	_, err = tx.ExecContext(ctx, `
		UPDATE runs SET status = ?, stopped_at = ?, completed_at = ?, termination_reason = ?,
			incident_id = ?, steps = ?, input_tokens = ?, output_tokens = ?,
			cost_microcents = ?, duration_micros = ?, ended_as = ?, ended_recorded_at = ?
		WHERE tenant_id = ? AND id = ?`,
		string(r.Status), nullTimeText(r.StoppedAt), nullTimeText(r.CompletedAt), r.TerminationReason,
		r.IncidentID, r.Totals.Steps, r.Totals.InputTokens, r.Totals.OutputTokens,
		r.Totals.CostMicrocents, r.Totals.DurationMicros, string(r.EndedAs), nullTimeText(r.EndRecordedAt), p.TenantID, p.RunID)
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	if change.Incident != nil {
		if err := insertIncident(ctx, tx, p, *change.Incident); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	return nil
}

const stepColumns = `tenant_id, run_id, step_index, timestamp, step_type, input_tokens, output_tokens,
	cost_microcents, duration_micros, content, content_digest, content_hash, status,
	is_inflection, findings, recorded_at`

// withoutContentColumns are stepColumns with NULL for the content, which
// what reads only how steps were judged, or their numbers, does not need.
const withoutContentColumns = `tenant_id, run_id, step_index, timestamp, step_type, input_tokens, output_tokens,
	cost_microcents, duration_micros, NULL, content_digest, content_hash, status,
	is_inflection, findings, recorded_at`

// runningColumns hold the run's totals over its steps up to and including
// the row's; the step count is its index plus one.
const runningColumns = `running_input_tokens, running_output_tokens, running_cost_microcents, running_duration_micros`

func scanStep(row scanner) (runproof.Step, error) {
	var st runproof.Step
	var content sql.NullString
	err := row.Scan(&st.TenantID, &st.RunID, &st.Index, timeCol{&st.Timestamp}, &st.StepType,
		&st.InputTokens, &st.OutputTokens, &st.CostMicrocents, &st.DurationMicros, &content,
		&st.ContentDigest, &st.ContentHash, &st.Status, &st.IsInflection, jsonCol{&st.Findings},
		timeCol{&st.RecordedAt})
	if content.Valid {
		st.Content = json.RawMessage(content.String)
	}
	return st, err
}

// insertSteps writes steps under the run named by p, whatever run their
// fields name: a change can only ever add to the run that was locked. Each
// step keeps the run's totals up to it: run's (its totals before) and the
// steps' before it.
func insertSteps(ctx context.Context, tx *sql.Tx, p runproof.UpdateRunParams, run runproof.Totals, steps []runproof.Step) error {
	if len(steps) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO steps (`+stepColumns+`, `+runningColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("insert steps: %w", err)
	}
	defer stmt.Close()
	for _, st := range steps {
		if run, err = run.Follow(p.RunID, st); err != nil {
			return err
		}
		findings, err := jsonList(st.Findings)
		if err != nil {
			return fmt.Errorf("insert steps: %w", err)
		}
		var content any
		if len(st.Content) > 0 {
			content = string(st.Content)
		}
		_, err = stmt.ExecContext(ctx, p.TenantID, p.RunID, st.Index, timeText(st.Timestamp), st.StepType,
			st.InputTokens, st.OutputTokens, st.CostMicrocents, st.DurationMicros, content,
			st.ContentDigest, st.ContentHash, string(st.Status), st.IsInflection, findings,
			timeText(st.RecordedAt), run.InputTokens, run.OutputTokens, run.CostMicrocents, run.DurationMicros)
		if isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "step %d of run %q already exists", st.Index, p.RunID)
		} else if err != nil {
			return fmt.Errorf("insert steps: %w", err)
		}
	}
	return nil
}

// RunningTotals returns the run's totals over its steps up to and
// including the one at index.
func (s *Store) RunningTotals(ctx context.Context, tenantID, runID string, index int64) (runproof.Totals, error) {
	t := runproof.Totals{Steps: index + 1}
	err := s.db.QueryRowContext(ctx, `SELECT `+runningColumns+` FROM steps
		WHERE tenant_id = ? AND run_id = ? AND step_index = ?`, tenantID, runID, index).
		Scan(&t.InputTokens, &t.OutputTokens, &t.CostMicrocents, &t.DurationMicros)
	if errors.Is(err, sql.ErrNoRows) {
		return runproof.Totals{}, runproof.Errorf(runproof.ENOTFOUND, "run %q has no step %d", runID, index)
	} else if err != nil {
		return runproof.Totals{}, fmt.Errorf("running totals: %w", err)
	}
	return t, nil
}

// ListSteps returns a run's steps in index order.
func (s *Store) ListSteps(ctx context.Context, p runproof.ListStepsParams) ([]runproof.Step, error) {
	var f filter
	f.add("tenant_id = ?", p.TenantID)
	f.add("run_id = ?", p.RunID)
	f.add("step_index >= ?", p.FromIndex)
	f.timeRange("timestamp", p.From, p.To)
	cols := stepColumns
	if p.Judged {
		f.add("findings IS NOT NULL")
	}
	if p.Judged || p.WithoutContent {
		cols = withoutContentColumns
	}
	var listed int64 // content bytes
	full := func(st runproof.Step) bool {
		listed += int64(len(st.Content))
		return p.MaxContentBytes > 0 && listed >= p.MaxContentBytes
	}
	steps, err := collectUntil(ctx, s.db, scanStep, full, `SELECT `+cols+` FROM steps WHERE `+f.conds+`
		ORDER BY step_index`+page(p.Limit, 0), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	return steps, nil
}
