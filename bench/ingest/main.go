// Command ingest measures how many steps per second runproof ingests through
// its HTTP API (batches of 500, on a real loopback server, with validation,
// hashing, policy evaluation, the audit event and the transaction), and, in
// the same run, the raw insert rate of the same rows through the same
// database driver with none of runproof's work. It prints both and their
// ratio, for SQLite and, when a PostgreSQL URL is given, for PostgreSQL.
//
//	go run ./bench/ingest [-steps 20000] [-batch 500] [-rounds 5] [-agents 4] [-postgres URL]
//
// -postgres defaults to $RUNPROOF_TEST_POSTGRES_URL; the benchmark works in a
// schema of its own and drops it afterwards.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"runtime/pprof"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "modernc.org/sqlite"

	"github.com/runproof/runproof/bench/internal/benchenv"
	"github.com/runproof/runproof/internal/runproof"
)

func main() {
	n := flag.Int("steps", 20_000, "steps to ingest per engine")
	batch := flag.Int("batch", 500, "steps per call")
	rounds := flag.Int("rounds", 5, "alternating rounds of runproof and raw inserts; the median of each, and of their ratios, is kept")
	agents := flag.Int("agents", 4, "agents sending at once in the second measurement, each its own run")
	pgURL := flag.String("postgres", os.Getenv("RUNPROOF_TEST_POSTGRES_URL"), "PostgreSQL URL (default $RUNPROOF_TEST_POSTGRES_URL; empty: SQLite only)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	ctx := context.Background()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/ingest:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, *n, *batch, *rounds, *agents, *pgURL); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/ingest:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, batch, rounds, agents int, pgURL string) error {
	fmt.Printf("%-10s %7s %8s %14s %14s %7s\n", "engine", "agents", "steps", "runproof/s", "raw insert/s", "ratio")
	st, path, closeSQLite, err := benchenv.SQLite(ctx)
	if err != nil {
		return err
	}
	raw, err := sqliteRaw(path)
	if err != nil {
		closeSQLite()
		return err
	}
	err = measure(ctx, "sqlite", st, raw, n, batch, rounds, agents)
	raw.db.Close()
	closeSQLite()
	if err != nil {
		return err
	}

	if pgURL == "" {
		fmt.Println("postgres   skipped: pass -postgres URL or set RUNPROOF_TEST_POSTGRES_URL")
		return nil
	}
	pst, schemaURL, closePostgres, err := benchenv.Postgres(ctx, pgURL)
	if err != nil {
		return err
	}
	defer closePostgres()
	pool, err := pgxpool.New(ctx, schemaURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return measure(ctx, "postgres", pst, pgRaw{pool}, n, batch, rounds, agents)
}

// rawInserter inserts prepared rows in transactions of one batch each, as
// plainly as the driver allows: the reference runproof is compared with.
type rawInserter interface {
	// insert stores rows after steps whose running totals were before.
	insert(ctx context.Context, tenant, run string, before runproof.Totals, rows []runproof.Step) error
	// settle leaves the database as calm before each timed phase as
	// before the other (SQLite: the WAL checkpointed), so that neither pays
	// for the other's writes.
	settle(ctx context.Context) error
}

func measure(ctx context.Context, engine string, store runproof.Store, raw rawInserter, n, batch, rounds, agents int) error {
	srv, err := benchenv.NewServer(ctx, store, n)
	if err != nil {
		return err
	}
	defer srv.Close()
	bodies := make([][]byte, 0, n/batch+1)
	start := time.Now().UTC().Add(-24 * time.Hour)
	for from := 0; from < n; from += batch {
		var steps []map[string]any
		for i := from; i < min(from+batch, n); i++ {
			steps = append(steps, map[string]any{"step_index": i, "timestamp": start.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
				"step_type": "llm:gpt-4o", "input_tokens": 120 + i%50, "output_tokens": 40, "cost_cents": 0.25, "duration_ms": 812.5,
				"content": map[string]any{"prompt": "Summarise the ticket", "response": "The customer asks for a refund."}})
		}
		b, _ := json.Marshal(map[string]any{"steps": steps})
		bodies = append(bodies, b)
	}

	// runproof: the whole HTTP path.
	post := func(path string, body []byte) ([]byte, error) {
		return srv.Post(ctx, path, "application/json", body)
	}
	// One agent sends every batch of its run in turn; then several agents,
	// each with its own run, send at once, as a fleet of agents does.
	sendRun := func(runID string) error {
		if _, err := post("/api/v1/runs", []byte(`{"run_id":"`+runID+`","agent_id":"bench","started_at":"`+start.Format(time.RFC3339Nano)+`"}`)); err != nil {
			return err
		}
		for _, b := range bodies {
			if _, err := post("/api/v1/runs/"+runID+"/steps", b); err != nil {
				return err
			}
		}
		return nil
	}
	// Rounds alternate runproof and raw, so that both see the same machine
	// (these machines are shared and noisy); the median of each is kept,
	// and of the ratio of each round's two.
	var apiRates, rawRates []float64
	for round := range rounds {
		apiRun, rawRun := fmt.Sprintf("bench-api-%d", round), fmt.Sprintf("bench-raw-%d", round)
		if err := raw.settle(ctx); err != nil {
			return err
		}
		t0 := time.Now()
		if err := sendRun(apiRun); err != nil {
			return err
		}
		apiRates = append(apiRates, float64(n)/time.Since(t0).Seconds())

		// raw: the same rows, already decoded, hashed and judged, inserted
		// with the same driver in transactions of one batch.
		stored, err := store.ListSteps(ctx, runproof.ListStepsParams{TenantID: benchenv.Tenant, RunID: apiRun})
		if err != nil {
			return err
		}
		if len(stored) != n {
			return fmt.Errorf("%d steps stored, want %d", len(stored), n)
		}
		if _, err := post("/api/v1/runs", []byte(`{"run_id":"`+rawRun+`","agent_id":"bench","started_at":"`+start.Format(time.RFC3339Nano)+`"}`)); err != nil {
			return err
		}
		if err := raw.settle(ctx); err != nil {
			return err
		}
		t0 = time.Now()
		var tot runproof.Totals
		for from := 0; from < n; from += batch {
			rows := stored[from:min(from+batch, n)]
			if err := raw.insert(ctx, benchenv.Tenant, rawRun, tot, rows); err != nil {
				return err
			}
			for _, r := range rows {
				tot = tot.Add(r)
			}
		}
		rawRates = append(rawRates, float64(n)/time.Since(t0).Seconds())
	}
	t0 := time.Now()
	errs := make(chan error, agents)
	for a := range agents {
		go func() { errs <- sendRun(fmt.Sprintf("bench-fleet-%d", a)) }()
	}
	for range agents {
		if err := <-errs; err != nil {
			return err
		}
	}
	fleetRate := float64(n*agents) / time.Since(t0).Seconds()
	// The ratio is the median of each round's: a round's two runs saw the
	// same machine, while the raw rate alone swings twofold between rounds.
	ratios := make([]float64, len(apiRates))
	for i := range ratios {
		ratios[i] = apiRates[i] / rawRates[i]
	}
	apiRate, rawRate := benchenv.Median(apiRates), benchenv.Median(rawRates)
	fmt.Printf("%-10s %7d %8d %14.0f %14.0f %7.2f\n", engine, 1, n, apiRate, rawRate, benchenv.Median(ratios))
	fmt.Printf("%-10s %7d %8d %14.0f %14.0f %7.2f\n", engine, agents, n*agents, fleetRate, rawRate, fleetRate/rawRate)
	return nil
}

// stepColumns are those of a stored step, its running totals included.
const stepColumns = `tenant_id, run_id, step_index, timestamp, step_type, input_tokens, output_tokens,
	cost_microcents, duration_micros, content, content_digest, content_hash, status, is_inflection, findings, recorded_at,
	running_input_tokens, running_output_tokens, running_cost_microcents, running_duration_micros`

type sqliteRawDB struct{ db *sql.DB }

// sqliteRaw opens the file with the same settings as the store.
func sqliteRaw(path string) (sqliteRawDB, error) {
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", path+"?"+q.Encode())
	return sqliteRawDB{db}, err
}

func (r sqliteRawDB) insert(ctx context.Context, tenant, run string, tot runproof.Totals, rows []runproof.Step) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO steps (`+stepColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	for _, s := range rows {
		tot = tot.Add(s)
		if _, err := stmt.ExecContext(ctx, tenant, run, s.Index, runproof.FormatTime(s.Timestamp), s.StepType, s.InputTokens,
			s.OutputTokens, s.CostMicrocents, s.DurationMicros, string(s.Content), s.ContentDigest, s.ContentHash,
			string(s.Status), s.IsInflection, nil, runproof.FormatTime(s.RecordedAt),
			tot.InputTokens, tot.OutputTokens, tot.CostMicrocents, tot.DurationMicros); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (r sqliteRawDB) settle(ctx context.Context) error {
	_, err := r.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

type pgRaw struct{ pool *pgxpool.Pool }

func (r pgRaw) settle(context.Context) error { return nil }

func (r pgRaw) insert(ctx context.Context, tenant, run string, tot runproof.Totals, rows []runproof.Step) error {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var b pgx.Batch
	sqlText := `INSERT INTO steps (` + stepColumns + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)`
	for _, s := range rows {
		tot = tot.Add(s)
		b.Queue(sqlText, tenant, run, s.Index, s.Timestamp, s.StepType, s.InputTokens, s.OutputTokens, s.CostMicrocents,
			s.DurationMicros, string(s.Content), s.ContentDigest, s.ContentHash, string(s.Status), s.IsInflection, nil, s.RecordedAt,
			tot.InputTokens, tot.OutputTokens, tot.CostMicrocents, tot.DurationMicros)
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}
