package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/runproof"
)

// CreateRun stores r and, unless stored already, its snapshot.
func (s *Store) CreateRun(ctx context.Context, r runproof.Run, snap runproof.Snapshot) error {
	policies, err := json.Marshal(snap.Policies)
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	defer tx.Rollback(ctx)
	// Runs started under the same policies share one snapshot.
	_, err = tx.Exec(ctx, `
		INSERT INTO policy_snapshots (tenant_id, id, policies, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, id) DO NOTHING`,
		snap.TenantID, snap.ID, string(policies), runproof.Timestamp(snap.CreatedAt))
	if err != nil {
		return fmt.Errorf("create run: snapshot: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO runs (`+runColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		r.TenantID, r.ID, r.AgentID, r.Goal, r.TraceID, string(r.Status), r.SnapshotID,
		runproof.Timestamp(r.StartedAt), nullTime(r.StoppedAt), nullTime(r.CompletedAt),
		r.TerminationReason, r.IncidentID, r.Totals.Steps, r.Totals.InputTokens, r.Totals.OutputTokens,
		r.Totals.CostMicrocents, r.Totals.DurationMicros, runproof.Timestamp(r.CreatedAt), string(r.EndedAs), nullTime(r.EndRecordedAt))
	if isUnique(err) {
		return runproof.Errorf(runproof.ECONFLICT, "run %q already exists", r.ID)
	} else if err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("create run: %w", err)
	}
	return nil
}

const runColumns = `tenant_id, id, agent_id, goal, trace_id, status, snapshot_id,
	started_at, stopped_at, completed_at, termination_reason, incident_id,
	steps, input_tokens, output_tokens, cost_microcents, duration_micros, created_at, ended_as, ended_recorded_at`

func scanRun(row pgx.Row) (runproof.Run, error) {
	var r runproof.Run
	err := row.Scan(&r.TenantID, &r.ID, &r.AgentID, &r.Goal, &r.TraceID, &r.Status, &r.SnapshotID,
		&r.StartedAt, &r.StoppedAt, &r.CompletedAt,
		&r.TerminationReason, &r.IncidentID, &r.Totals.Steps, &r.Totals.InputTokens,
		&r.Totals.OutputTokens, &r.Totals.CostMicrocents, &r.Totals.DurationMicros,
		&r.CreatedAt, &r.EndedAs, &r.EndRecordedAt)
	r.StartedAt = runproof.Timestamp(r.StartedAt)
	r.StoppedAt = utc(r.StoppedAt)
	r.CompletedAt = utc(r.CompletedAt)
	r.EndRecordedAt = utc(r.EndRecordedAt)
	r.CreatedAt = runproof.Timestamp(r.CreatedAt)
	return r, err
}

// getRun reads one run; lock is "" or a locking clause such as FOR UPDATE.
func getRun(ctx context.Context, db querier, tenantID, runID, lock string) (runproof.Run, error) {
	r, err := scanRun(db.QueryRow(ctx,
		`SELECT `+runColumns+` FROM runs WHERE tenant_id = $1 AND id = $2 `+lock, tenantID, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.Run{}, runproof.Errorf(runproof.ENOTFOUND, "run %q not found", runID)
	} else if err != nil {
		return runproof.Run{}, fmt.Errorf("get run: %w", err)
	}
	return r, nil
}

// GetRun returns one run.
func (s *Store) GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error) {
	return getRun(ctx, s.pool, tenantID, runID, "")
}

// ListRuns returns runs newest first.
func (s *Store) ListRuns(ctx context.Context, p runproof.ListRunsParams) ([]runproof.Run, error) {
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
		f.add("(started_at, id) < (?, ?)", runproof.Timestamp(p.After.StartedAt), p.After.RunID)
	}
	runs, err := collect(ctx, s.pool, scanRun, `SELECT `+runColumns+` FROM runs WHERE `+f.conds+`
		ORDER BY started_at DESC, id DESC`+page(p.Limit, 0), f.args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return runs, nil
}

func getSnapshot(ctx context.Context, db querier, tenantID, snapshotID string) (runproof.Snapshot, error) {
	var snap runproof.Snapshot
	var policies string
	err := db.QueryRow(ctx, `
		SELECT tenant_id, id, policies, created_at FROM policy_snapshots WHERE tenant_id = $1 AND id = $2`,
		tenantID, snapshotID).Scan(&snap.TenantID, &snap.ID, &policies, &snap.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return runproof.Snapshot{}, runproof.Errorf(runproof.ENOTFOUND, "policy snapshot %q not found", snapshotID)
	} else if err != nil {
		return runproof.Snapshot{}, fmt.Errorf("get snapshot: %w", err)
	}
	snap.CreatedAt = runproof.Timestamp(snap.CreatedAt)
	if err := json.Unmarshal([]byte(policies), &snap.Policies); err != nil {
		return runproof.Snapshot{}, fmt.Errorf("get snapshot: %w", err)
	}
	return snap, nil
}

// GetSnapshot returns one policy snapshot.
func (s *Store) GetSnapshot(ctx context.Context, tenantID, snapshotID string) (runproof.Snapshot, error) {
	return getSnapshot(ctx, s.pool, tenantID, snapshotID)
}

// UpdateRun runs fn on the run's state and writes what it returns, all in
// one transaction. SELECT ... FOR UPDATE makes a concurrent update of the
// same run wait until this one commits; updates of other runs go on.
func (s *Store) UpdateRun(ctx context.Context, p runproof.UpdateRunParams, fn func(runproof.RunState) (runproof.RunChange, error)) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	defer tx.Rollback(ctx)

	var st runproof.RunState
	if st.Run, err = getRun(ctx, tx, p.TenantID, p.RunID, "FOR UPDATE"); err != nil {
		return err
	}
	if st.Snapshot, err = getSnapshot(ctx, tx, p.TenantID, st.Run.SnapshotID); err != nil {
		return err
	}
	if p.StepsFrom <= p.StepsTo {
		st.Existing, err = collect(ctx, tx, scanStep, `SELECT `+stepColumns+` FROM steps
			WHERE tenant_id = $1 AND run_id = $2 AND step_index BETWEEN $3 AND $4
			ORDER BY step_index`, p.TenantID, p.RunID, p.StepsFrom, p.StepsTo)
		if err != nil {
			return fmt.Errorf("update run: steps: %w", err)
		}
	}

	if st.Run.IncidentID != "" {
		step, err := scanStep(tx.QueryRow(ctx, `SELECT `+stepColumns+` FROM steps WHERE tenant_id = $1 AND run_id = $2 AND step_index =
			(SELECT inflection_step_index FROM incidents WHERE tenant_id = $1 AND id = $3)`, p.TenantID, p.RunID, st.Run.IncidentID))
		if err != nil {
			return fmt.Errorf("update run: inflection step: %w", err)
		}
		st.Inflection = &step
	}

	change, err := fn(st)
	if err != nil {
		return err
	}

	// Everything fn asked for goes in one batch: one round trip for the
	// steps (up to service.MaxStepsPerCall), the run and the incident.
	var b pgx.Batch
	running := st.Run.Totals
	for _, st := range change.Steps {
		if running, err = running.Follow(p.RunID, st); err != nil {
			return err
		}
		if err := queueStep(&b, p, st, running); err != nil {
			return err
		}
	}
	r := change.Run
	b.Queue(`
		UPDATE runs SET status = $3, stopped_at = $4, completed_at = $5, termination_reason = $6,
			incident_id = $7, steps = $8, input_tokens = $9, output_tokens = $10,
			cost_microcents = $11, duration_micros = $12, ended_as = $13, ended_recorded_at = $14
		WHERE tenant_id = $1 AND id = $2`,
		p.TenantID, p.RunID, string(r.Status), nullTime(r.StoppedAt), nullTime(r.CompletedAt),
		r.TerminationReason, r.IncidentID, r.Totals.Steps, r.Totals.InputTokens,
		r.Totals.OutputTokens, r.Totals.CostMicrocents, r.Totals.DurationMicros, string(r.EndedAs), nullTime(r.EndRecordedAt))
	if change.Incident != nil {
		queueIncident(&b, p, *change.Incident)
	}
	if err := sendUpdate(ctx, tx, &b, p, change); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	return nil
}

// sendUpdate sends the batch UpdateRun queued and names what failed.
func sendUpdate(ctx context.Context, tx pgx.Tx, b *pgx.Batch, p runproof.UpdateRunParams, change runproof.RunChange) error {
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	for _, st := range change.Steps {
		if _, err := br.Exec(); isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "step %d of run %q already exists", st.Index, p.RunID)
		} else if err != nil {
			return fmt.Errorf("insert steps: %w", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("update run: %w", err)
	}
	if change.Incident != nil {
		if _, err := br.Exec(); isUnique(err) {
			return runproof.Errorf(runproof.ECONFLICT, "incident %q already exists", change.Incident.ID)
		} else if err != nil {
			return fmt.Errorf("insert incident: %w", err)
		}
	}
	if err := br.Close(); err != nil {
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

func scanStep(row pgx.Row) (runproof.Step, error) {
	var st runproof.Step
	var content, findings *string
	if err := row.Scan(&st.TenantID, &st.RunID, &st.Index, &st.Timestamp, &st.StepType,
		&st.InputTokens, &st.OutputTokens, &st.CostMicrocents, &st.DurationMicros, &content,
		&st.ContentDigest, &st.ContentHash, &st.Status, &st.IsInflection, &findings,
		&st.RecordedAt); err != nil {
		return st, err
	}
	st.Timestamp = runproof.Timestamp(st.Timestamp)
	st.RecordedAt = runproof.Timestamp(st.RecordedAt)
	if content != nil {
		st.Content = json.RawMessage(*content)
	}
	return st, unmarshalNull(findings, &st.Findings)
}

// queueStep adds the insert of st to b, under the run named by p whatever
// run st names: a change can only ever add to the run that was locked.
// running is the run's totals up to and including st.
func queueStep(b *pgx.Batch, p runproof.UpdateRunParams, st runproof.Step, running runproof.Totals) error {
	findings, err := jsonList(st.Findings)
	if err != nil {
		return fmt.Errorf("insert steps: %w", err)
	}
	var content *string
	if len(st.Content) > 0 {
		c := string(st.Content)
		content = &c
	}
	b.Queue(`INSERT INTO steps (`+stepColumns+`, `+runningColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		p.TenantID, p.RunID, st.Index, runproof.Timestamp(st.Timestamp), st.StepType,
		st.InputTokens, st.OutputTokens, st.CostMicrocents, st.DurationMicros, content,
		st.ContentDigest, st.ContentHash, string(st.Status), st.IsInflection, findings,
		runproof.Timestamp(st.RecordedAt), running.InputTokens, running.OutputTokens, running.CostMicrocents,
		running.DurationMicros)
	return nil
}

// RunningTotals returns the run's totals over its steps up to and
// including the one at index.
func (s *Store) RunningTotals(ctx context.Context, tenantID, runID string, index int64) (runproof.Totals, error) {
	t := runproof.Totals{Steps: index + 1}
	err := s.pool.QueryRow(ctx, `SELECT `+runningColumns+` FROM steps
		WHERE tenant_id = $1 AND run_id = $2 AND step_index = $3`, tenantID, runID, index).
		Scan(&t.InputTokens, &t.OutputTokens, &t.CostMicrocents, &t.DurationMicros)
	if errors.Is(err, pgx.ErrNoRows) {
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
	query := `SELECT ` + cols + ` FROM steps WHERE ` + f.conds + ` ORDER BY step_index` + page(p.Limit, 0)
	args := f.args
	if p.MaxContentBytes > 0 && cols == stepColumns {
		// The rows after the one that fills the list are not even sent
		// (pgx would read them off the connection to close the query):
		// the sizes are those of the values as stored, and the content is
		// read for the rows sent alone.
		args = append(args, p.MaxContentBytes)
		query = `SELECT ` + cols + ` FROM (SELECT *, sum(size) OVER (ORDER BY step_index) - size AS before
			FROM (SELECT *, coalesce(octet_length(content), 0) AS size FROM steps WHERE ` + f.conds + `
				ORDER BY step_index` + page(p.Limit, 0) + `) listed) sized
			WHERE before < $` + strconv.Itoa(len(args)) + ` ORDER BY step_index`
	}
	steps, err := collect(ctx, s.pool, scanStep, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list steps: %w", err)
	}
	return steps, nil
}
