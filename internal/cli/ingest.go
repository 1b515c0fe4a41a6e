package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// progressEvery is how many steps pass between two progress lines.
const progressEvery = 10_000

func ingestCommand() *command {
	return &command{
		name:    "ingest",
		summary: "bulk-load runs and steps from NDJSON",
		help: `Usage: runproof ingest --tenant T FILE [flags]

Loads runs and steps from FILE ("-" for stdin), one JSON object a line, with
the same validation and policy evaluation as the HTTP API:

  {"run": {"run_id": "r1", "agent_id": "a", "goal": "…", "trace_id": "…", "started_at": "…"}}
  {"step": {"run_id": "r1", "step_index": 0, "timestamp": "…", "step_type": "llm",
            "input_tokens": 10, "output_tokens": 5, "cost_cents": 0.2, "duration_ms": 800, "content": {…}}}
  {"complete": {"run_id": "r1", "status": "completed", "completed_at": "…"}}

A run line must come before the steps of its run (unless the run exists) and
must give run_id and started_at (a run stored already may leave it out).
Give a past run its completed_at too: without it, it ends now. Steps of one
run on consecutive lines are sent together, up to 1000 a call; steps of
runs interleaved line by line are sent one at a time, several times slower.
Blank lines are skipped, and a byte order mark before the first; lines may
be up to 4 MiB.

Ingest stops at the first bad line and names it; everything before it stays
stored. It is resumable: fix the line and run the same file again, since
re-sending identical runs and steps is a no-op.

  --tenant T            the tenant the runs belong to (required)
` + commonHelp + `
Prints a summary: runs and steps read (and how many were new), incidents
opened and stop decisions (runs a stop policy stopped during this ingest),
and a warning when the tenant has no policy to judge its steps by, or no
API key (a mistyped --tenant).

Examples:
  runproof ingest --tenant acme runs.ndjson
  zcat runs.ndjson.gz | runproof ingest --tenant acme -
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("ingest: name one FILE (or - for stdin), e.g. runproof ingest --tenant acme runs.ndjson")
				}
				if err := checkTenant("ingest", *tenant); err != nil {
					return err
				}
				return ingest(ctx, e, *tenant, args[0])
			}
		},
	}
}

// ingestLine is one line of the input: exactly one member is set.
type ingestLine struct {
	Run      *service.RunInput `json:"run"`
	Step     *stepLine         `json:"step"`
	Complete *completeLine     `json:"complete"`
}

type stepLine struct {
	RunID string `json:"run_id"`
	service.StepInput
}

type completeLine struct {
	RunID string `json:"run_id"`
	service.CompleteInput
}

// ingester holds the state of one ingest.
type ingester struct {
	e      *env
	svc    *service.Service
	tenant string
	runs   map[string]*runState // runs seen so far, by id

	// pending steps of one run from consecutive lines, sent as one call
	batchRun   string
	batch      []service.StepInput
	batchLines []int

	stats ingestStats
}

// runState is what the ingester knows of a run, to count what is new.
type runState struct {
	stored   int64 // steps stored
	incident string
	stopped  bool
}

type ingestStats struct {
	runs, newRuns, steps, newSteps, incidents, stops int
}

func (s ingestStats) String() string {
	return fmt.Sprintf("runs: %d (%d new)\nsteps: %d (%d new)\nincidents opened: %d\nstop decisions: %d\n",
		s.runs, s.newRuns, s.steps, s.newSteps, s.incidents, s.stops)
}

// lineError is a bad line; everything before it is stored.
type lineError struct {
	line int
	msg  string
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// badLine is the error of a line the service refused: a lineError when the
// line is at fault, else (the database is away, say) err as it is, for the
// line is not.
func badLine(line int, err error) error {
	if !lineAtFault(err) {
		return err
	}
	return &lineError{line, fieldMessage(err)}
}

// lineAtFault reports whether the service refused a line for what it
// holds, rather than for a failure of its own.
func lineAtFault(err error) bool {
	code := runproof.ErrorCode(err)
	return code != runproof.EINTERNAL && code != runproof.EUNAVAILABLE
}

func ingest(ctx context.Context, e *env, tenant, file string) error {
	name := inputName(file)
	r, err := openInput(ctx, file, e.stdin)
	if err != nil {
		return err
	}
	defer r.Close()
	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	in := &ingester{e: e, svc: service.New(store, service.Options{}), tenant: tenant, runs: map[string]*runState{}}

	// An event as it starts, so that a load killed before its end (which
	// records what it stored) is in the audit log all the same.
	if err := record(ctx, in.svc, cliEvent(tenant, runproof.AuditWrite, "ingest", "runs", runproof.DecisionAllow, name+": started")); err != nil {
		return fmt.Errorf("%s: nothing was stored: the audit event of the start could not be recorded: %w", name, err)
	}
	start := time.Now()
	err = in.read(ctx, r)
	if ctx.Err() != nil && len(in.batch) > 0 {
		// Interrupted: the steps read and not stored yet are stored first,
		// for a few seconds at most, so that every line read is kept.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptedFlush)
		if ferr := in.flush(fctx); ferr != nil && lineAtFault(ferr) {
			err = ferr
		}
		cancel()
	}
	// An event of the end, also when ingest stops early: what was stored
	// must be accounted for. It is recorded even after Ctrl-C.
	detail := fmt.Sprintf("%s: %s", name, strings.ReplaceAll(strings.TrimSpace(in.stats.String()), "\n", ", "))
	if err != nil {
		detail += "; stopped: " + err.Error()
	}
	aerr := record(ctx, in.svc, cliEvent(tenant, runproof.AuditWrite, "ingest", "runs", runproof.DecisionAllow, detail))
	if st := in.stats; err != nil && st.newRuns+st.newSteps+st.incidents+st.stops > 0 {
		// What stopped ingest is on stderr; what it stored before, and the
		// runs it stopped, on stdout, as after a whole file: running the
		// file again skips it, and would not say so.
		fmt.Fprint(e.stdout, st)
	}
	var le *lineError
	switch {
	case err == nil && aerr != nil:
		return fmt.Errorf("%s: the input was stored but the audit event could not be recorded: %w", name, aerr)
	case err != nil && ctx.Err() != nil && len(in.batch) > 0:
		return fmt.Errorf("%s: interrupted: lines from %d on are not stored; run the same file again to resume", name, in.batchLines[0])
	case err != nil && ctx.Err() != nil && !errors.As(err, &le):
		return fmt.Errorf("%s: interrupted: the lines read before are stored; run the same file again to resume", name)
	case errors.As(err, &le) && le.line == 1:
		return fmt.Errorf("%s: %w (nothing was stored: fix it and run again)", name, err)
	case errors.As(err, &le):
		return fmt.Errorf("%s: %w (lines before it are stored: fix it and run again, stored lines are skipped)", name, err)
	case runproof.ErrorCode(err) == runproof.EUNAVAILABLE && len(in.batch) > 0:
		return fmt.Errorf("%s: stopped: %w (lines from %d on are not stored: run the same file again once it is back, stored lines are skipped)", name, err, in.batchLines[0])
	case runproof.ErrorCode(err) == runproof.EUNAVAILABLE:
		return fmt.Errorf("%s: stopped: %w (the lines read before are stored: run the same file again once it is back, stored lines are skipped)", name, err)
	case err != nil:
		return fmt.Errorf("%s: %w", name, err)
	}
	e.log.Debug("ingest done", slog.String("file", name), slog.Int("steps", in.stats.steps), slog.Duration("elapsed", time.Since(start)))
	warnKeyless(ctx, e, in.svc, tenant)
	if _, err = fmt.Fprint(e.stdout, in.stats); err != nil {
		return err
	}
	if active, err := in.svc.ActivePolicies(ctx, tenant); err == nil && len(active) == 0 && in.stats.newSteps > 0 {
		// Not an error, but a mistyped --tenant records every run unguarded.
		_, err = fmt.Fprintf(e.stdout, "policies: none, so no step was judged (check --tenant %s, or add policies with runproof policy apply)\n", tenant)
		return err
	}
	return nil
}

// interruptedFlush bounds storing the steps read when ingest is
// interrupted.
const interruptedFlush = 10 * time.Second

// read processes the input line by line, sending steps in batches.
func (in *ingester) read(ctx context.Context, r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), service.MaxBodyBytes)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\ufeff")) // a byte order mark some editors write
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l ingestLine
		if err := service.DecodeJSON(line, &l); err != nil {
			return in.failAt(ctx, n, trimKind(decodeMessage(err, "the line")))
		}
		if kinds := btoi(l.Run != nil) + btoi(l.Step != nil) + btoi(l.Complete != nil); kinds != 1 {
			return in.failAt(ctx, n, `must hold exactly one of "run", "step" or "complete"`)
		}
		switch {
		case l.Step != nil:
			if err := in.addStep(ctx, n, l.Step); err != nil {
				return err
			}
		case l.Run != nil:
			if err := in.flush(ctx); err != nil {
				return err
			}
			if err := in.createRun(ctx, n, *l.Run); err != nil {
				return err
			}
		case l.Complete != nil:
			if err := in.flush(ctx); err != nil {
				return err
			}
			if err := in.complete(ctx, n, l.Complete); err != nil {
				return err
			}
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return in.failAt(ctx, n+1, "is longer than 4 MiB")
	} else if sc.Err() != nil {
		if err := in.flush(ctx); err != nil {
			return err
		}
		return fmt.Errorf("cannot read after line %d: %w", n, sc.Err())
	}
	return in.flush(ctx)
}

// failAt stores what is pending before a bad line, then reports the line.
func (in *ingester) failAt(ctx context.Context, line int, msg string) error {
	if err := in.flush(ctx); err != nil {
		return err
	}
	return &lineError{line: line, msg: msg}
}

// trimKind drops the "run."/"step."/"complete." prefix of a field path:
// the line number already says which object it is.
func trimKind(msg string) string {
	for _, k := range []string{"run.", "step.", "complete."} {
		if rest, ok := strings.CutPrefix(msg, k); ok {
			return rest
		}
	}
	return msg
}

func (in *ingester) createRun(ctx context.Context, line int, r service.RunInput) error {
	switch {
	case r.RunID == "":
		return &lineError{line, "run_id: is required by ingest (steps refer to it, and re-sending the file must find the same run)"}
	case r.StartedAt == "":
		// Refused for a new run; one stored already (by an earlier runproof,
		// which took such a line) is read on, so that its file resumes.
		if _, err := in.svc.GetRun(ctx, in.tenant, r.RunID); runproof.ErrorCode(err) == runproof.ENOTFOUND {
			return &lineError{line, "started_at: is required by ingest: a run loaded from a file started when it did, not now " +
				"(and a run stored as starting now takes no step dated more than a day before)"}
		} else if err != nil {
			return err
		}
	}
	run, created, err := in.svc.CreateRun(ctx, in.tenant, r)
	if err != nil {
		return badLine(line, err)
	}
	in.stats.runs++
	if created {
		in.stats.newRuns++
	}
	in.runs[run.ID] = &runState{stored: run.Totals.Steps, incident: run.IncidentID, stopped: run.Status == runproof.RunStopped}
	return nil
}

func (in *ingester) addStep(ctx context.Context, line int, s *stepLine) error {
	if s.RunID == "" {
		return in.failAt(ctx, line, "run_id: is required (the run the step belongs to)")
	}
	// A batch is one call: steps of one run with consecutive indexes.
	if len(in.batch) > 0 {
		last := in.batch[len(in.batch)-1].StepIndex
		follows := last != nil && s.StepIndex != nil && *s.StepIndex == *last+1
		if in.batchRun != s.RunID || !follows || len(in.batch) == service.MaxStepsPerCall {
			if err := in.flush(ctx); err != nil {
				return err
			}
		}
	}
	in.batchRun = s.RunID
	in.batch = append(in.batch, s.StepInput)
	in.batchLines = append(in.batchLines, line)
	return nil
}

func (in *ingester) complete(ctx context.Context, line int, c *completeLine) error {
	if c.RunID == "" {
		return &lineError{line, "run_id: is required (the run to complete)"}
	}
	if _, err := in.svc.CompleteRun(ctx, in.tenant, c.RunID, c.CompleteInput); err != nil {
		return badLine(line, err)
	}
	return nil
}

// flush sends the pending batch. When a step in it is bad, the steps before
// it are sent again, without it, until they are stored (another of them may
// be bad too), so that everything before the first bad line is kept. A
// batch that fails otherwise (the database away, ingest interrupted) stays
// pending.
func (in *ingester) flush(ctx context.Context) error {
	if len(in.batch) == 0 {
		return nil
	}
	runID, steps, lines := in.batchRun, in.batch, in.batchLines
	err := in.send(ctx, runID, steps)
	bad, msg := -1, "" // the first step at fault found
	for err != nil && lineAtFault(err) {
		i, m := stepErrorAt(err)
		if i >= len(steps) {
			i = 0
		}
		bad, msg, err = i, m, nil
		if i > 0 {
			steps = steps[:i]
			err = in.send(ctx, runID, steps)
		}
	}
	if err != nil {
		return err
	}
	in.batch, in.batchLines = nil, nil
	if bad >= 0 {
		return &lineError{line: lines[bad], msg: msg}
	}
	return nil
}

// send validates and appends steps of one run.
func (in *ingester) send(ctx context.Context, runID string, batch []service.StepInput) error {
	st, ok := in.runs[runID]
	if !ok {
		run, err := in.svc.GetRun(ctx, in.tenant, runID)
		if runproof.ErrorCode(err) == runproof.ENOTFOUND {
			return runproof.Errorf(runproof.ENOTFOUND, "run_id: run %q does not exist: put a {\"run\": …} line before its steps", runID)
		} else if err != nil {
			return err
		}
		st = &runState{stored: run.Totals.Steps, incident: run.IncidentID, stopped: run.Status == runproof.RunStopped}
		in.runs[runID] = st
	}
	steps, err := service.ValidateSteps(batch, in.svc.Now())
	if err != nil {
		return err
	}
	res, err := in.svc.AppendSteps(ctx, in.tenant, runID, steps)
	if err != nil {
		return err
	}

	from, to := steps[0].Index, steps[len(steps)-1].Index
	before := in.stats.steps
	in.stats.steps += len(steps)
	in.stats.newSteps += int(max(0, to+1-max(from, st.stored)))
	st.stored = max(st.stored, to+1)
	if res.IncidentID != "" && res.IncidentID != st.incident {
		in.stats.incidents++
		st.incident = res.IncidentID
	}
	if res.Decision == service.AgentStop && !st.stopped {
		in.stats.stops++
		st.stopped = true
	}
	if before/progressEvery != in.stats.steps/progressEvery {
		in.e.log.Info("ingest progress", slog.Int("steps", in.stats.steps), slog.Int("runs", in.stats.runs))
	}
	return nil
}

// stepErrorAt finds which step of a call an error is about, by the path
// of its first field at fault (service.StepPath), and returns the step's
// place in the call (0 when the error names none) and that step's faults
// without the path, since the line number replaces it.
func stepErrorAt(err error) (int, string) {
	fields := runproof.ErrorFields(err)
	if len(fields) == 0 {
		return 0, fieldMessage(err)
	}
	i, _, ok := service.StepOf(fields[0].Field)
	if !ok {
		return 0, fieldMessage(err)
	}
	var faults []string
	for _, f := range fields {
		if j, field, ok := service.StepOf(f.Field); ok && j == i && field == "" {
			faults = append(faults, f.Message)
		} else if ok && j == i {
			faults = append(faults, field+": "+f.Message)
		}
	}
	return i, strings.Join(faults, "; ")
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
