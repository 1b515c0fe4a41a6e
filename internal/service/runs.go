package service

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

// RunInput is a run as an agent opens it.
type RunInput struct {
	RunID     string `json:"run_id"`
	AgentID   string `json:"agent_id" openapi:"required"`
	Goal      string `json:"goal"`
	TraceID   string `json:"trace_id"`
	StartedAt string `json:"started_at"`
}

// CreateRun opens a run and freezes the tenant's active policies into its
// snapshot. Re-sending the same run, even at the same time, is a no-op that
// returns the stored run (created false); a different run under the same id
// is ECONFLICT.
func (s *Service) CreateRun(ctx context.Context, tenantID string, in RunInput) (run runproof.Run, created bool, err error) {
	now := s.Now()
	if a := boundAgent(ctx); a != "" && in.AgentID == "" {
		in.AgentID = a // the key's agent, which it need not repeat
	} else if a != "" && in.AgentID != a {
		msg := fmt.Sprintf("this key is bound to agent %q: it opens that agent's runs only (agent_id %q)", a, in.AgentID)
		return runproof.Run{}, false, &runproof.Error{Code: runproof.EFORBIDDEN, Message: msg,
			Fields: []runproof.FieldError{{Field: "agent_id", Message: fmt.Sprintf("must be %q, the agent of this key, or left out", a)}}}
	}
	var errs runproof.Fields
	if strings.TrimSpace(in.AgentID) == "" {
		errs.Add("agent_id", "is required (the agent's name)")
	} else {
		errs.Text("agent_id", in.AgentID, runproof.MaxName)
	}
	if in.RunID != "" && !runproof.ValidID(in.RunID) {
		errs.Add("run_id", runproof.IDRule)
	}
	errs.Prose("goal", in.Goal, runproof.MaxGoal)
	if in.TraceID != "" && !validTraceID(in.TraceID) {
		errs.Add("trace_id", "must be 32 lowercase hex digits (a W3C trace id), not all zero")
	}
	started := now
	if in.StartedAt != "" {
		t, err := ParseReportedTime(in.StartedAt, now)
		if err != nil {
			errs.Add("started_at", "%s", err)
		}
		started = t
	}
	if err := errs.Err(); err != nil {
		return runproof.Run{}, false, err
	}

	if in.RunID != "" {
		stored, err := s.resentRun(ctx, tenantID, in, started)
		if runproof.ErrorCode(err) != runproof.ENOTFOUND {
			return stored, false, err
		}
	}

	policies, err := s.store.ActivePolicies(ctx, tenantID)
	if err != nil {
		return runproof.Run{}, false, err
	}
	snap, err := runproof.NewSnapshot(tenantID, policies, now)
	if err != nil {
		return runproof.Run{}, false, err
	}
	run = runproof.Run{TenantID: tenantID, ID: in.RunID, AgentID: in.AgentID, Goal: in.Goal,
		TraceID: in.TraceID, Status: runproof.RunRunning, SnapshotID: snap.ID, StartedAt: started, CreatedAt: now}
	if run.ID == "" {
		run.ID = s.newID()
	}
	if run.TraceID == "" {
		run.TraceID = newTraceID()
	}
	if err := s.store.CreateRun(ctx, run, snap); runproof.ErrorCode(err) == runproof.ECONFLICT && in.RunID != "" {
		// Sent twice at once: the first one stored stands.
		stored, err := s.resentRun(ctx, tenantID, in, started)
		return stored, false, err
	} else if err != nil {
		return runproof.Run{}, false, err
	}
	return run, true, nil
}

// resentRun answers a run sent under the id of a stored run: the stored run
// when the fields sent match it, ECONFLICT when they do not, ENOTFOUND when
// there is no such run. started is in.StartedAt parsed.
func (s *Service) resentRun(ctx context.Context, tenantID string, in RunInput, started time.Time) (runproof.Run, error) {
	existing, err := s.store.GetRun(ctx, tenantID, in.RunID)
	if err != nil {
		return runproof.Run{}, err
	}
	if ownRun(ctx, existing) != nil { // another agent's: say nothing of it
		return runproof.Run{}, runproof.Errorf(runproof.ECONFLICT, "run_id %q is taken: use another", in.RunID)
	}
	var differ []string
	var fields []runproof.FieldError
	for _, f := range []struct {
		name   string
		differ bool
	}{
		{"agent_id", existing.AgentID != in.AgentID},
		{"goal", existing.Goal != in.Goal},
		{"trace_id", in.TraceID != "" && in.TraceID != existing.TraceID},
		{"started_at", in.StartedAt != "" && !started.Equal(existing.StartedAt)},
	} {
		if f.differ {
			differ = append(differ, f.name)
			fields = append(fields, runproof.FieldError{Field: f.name, Message: "differs from the stored run's"})
		}
	}
	if len(differ) == 0 {
		return existing, nil
	}
	msg := fmt.Sprintf("run %q already exists with another %s: use another run_id, or send the run as it was",
		in.RunID, strings.Join(differ, ", "))
	return runproof.Run{}, &runproof.Error{Code: runproof.ECONFLICT, Message: msg, Fields: fields}
}

func validTraceID(s string) bool {
	if len(s) != 32 || strings.Trim(s, "0") == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// Decisions answered to an agent after its steps (not to be confused with
// the allow/deny of audit events, runproof.DecisionAllow).
const (
	AgentAllow = "allow" // go on
	AgentStop  = "stop"  // the run is stopped: stop
)

// StepOutcome is what an agent learns about one of its steps.
type StepOutcome struct {
	StepIndex    int64               `json:"step_index"`
	Status       runproof.StepStatus `json:"status"`
	IsInflection bool                `json:"is_inflection"`
	ContentHash  string              `json:"content_hash"`
	Resent       bool                `json:"-"` // already stored: this call changed nothing
}

// StepsResult answers an append-steps call.
type StepsResult struct {
	Decision   string        `json:"decision"`
	IncidentID string        `json:"incident_id,omitempty"`
	Steps      []StepOutcome `json:"steps"`
}

// MaxStepBeforeRun is how long before its run started a step may be
// dated: an OTLP trace's first spans can reach runproof after later ones,
// which opened the run, and an agent's clock may be hours off (a time
// zone taken for UTC); a step older than that is a clock gone wrong, which
// would make the incident's time to detect years long.
const MaxStepBeforeRun = 24 * time.Hour

// AppendSteps judges validated steps (see DecodeSteps) in index order against
// the run's snapshot and running totals and stores them, all or nothing.
// A step already stored with the same content is a no-op, also once the run
// ended; with other content it is ECONFLICT. New steps must follow the last
// stored one without a gap; a run that ended (completed, failed, cancelled,
// or stopped and then ended by its agent) takes none (ECONFLICT) but for
// late steps (refusedLate). A late step over a stop policy of a run that
// ended unstopped opens an incident that nothing contained, and the steps
// after it are judged as after a stop.
func (s *Service) AppendSteps(ctx context.Context, tenantID, runID string, steps []runproof.Step) (StepsResult, error) {
	return s.appendSteps(ctx, tenantID, runID, steps, time.Time{})
}

// appendSteps is AppendSteps recording the steps, and a stop, at a time:
// that of their request when it is stored in several calls (an OTLP export
// of more spans than one call takes), so that the steps that came with the
// one that stopped the run are told from those sent after the agent was
// told (their recorded_at is the run's stopped_at); when zero, the time of
// the call.
func (s *Service) appendSteps(ctx context.Context, tenantID, runID string, steps []runproof.Step, at time.Time) (StepsResult, error) {
	if len(steps) == 0 {
		return StepsResult{}, runproof.Invalid(runproof.FieldError{Field: "steps", Message: "must hold at least one step"})
	}
	var res StepsResult
	p := runproof.UpdateRunParams{TenantID: tenantID, RunID: runID,
		StepsFrom: steps[0].Index, StepsTo: steps[len(steps)-1].Index}
	err := s.store.UpdateRun(ctx, p, func(st runproof.RunState) (runproof.RunChange, error) {
		res = StepsResult{Steps: make([]StepOutcome, 0, len(steps))}
		run := st.Run
		if err := ownRun(ctx, run); err != nil {
			return runproof.RunChange{}, err
		}
		// A stopped run takes the steps its agent sends on (they are
		// evidence it went on) until the agent ends it.
		ended := run.CompletedAt != nil
		stored := map[int64]runproof.Step{}
		for _, e := range st.Existing {
			stored[e.Index] = e
		}
		eval, err := s.evaluator(st.Snapshot)
		if err != nil {
			return runproof.RunChange{}, err
		}
		now := at
		if now.IsZero() {
			now = s.Now()
		}
		change := runproof.RunChange{Run: run}
		breaking := st.Inflection // the step that stopped the run
		for i, step := range steps {
			if old, ok := stored[step.Index]; ok {
				if old.ContentHash != step.ContentHash {
					return runproof.RunChange{}, moved(stepConflict(i, "step %d is already stored with other content (content_hash %s)",
						step.Index, old.ContentHash))
				}
				o := outcome(old)
				o.Resent = true
				res.Steps = append(res.Steps, o)
				continue
			}
			if ended {
				if why := refusedLate(run, step.Timestamp, step.DurationMicros, now, "steps"); why != "" {
					return runproof.RunChange{}, moved(stepConflict(i, "%s", why))
				}
			}
			if next := change.Run.Totals.Steps; step.Index != next {
				return runproof.RunChange{}, moved(runproof.Invalid(runproof.FieldError{Field: StepPath(i, "step_index"),
					Message: fmt.Sprintf("must be %d: the run has %d steps and steps follow each other without gaps", next, next)}))
			}
			if earliest := run.StartedAt.Add(-MaxStepBeforeRun); step.Timestamp.Before(earliest) {
				return runproof.RunChange{}, runproof.Invalid(runproof.FieldError{Field: StepPath(i, "timestamp"),
					Message: fmt.Sprintf("is more than %v before the run started (%s): check the agent's clock, or give the run the time it started", MaxStepBeforeRun,
						runproof.FormatTime(run.StartedAt))})
			}
			if err := checkTotals(i, change.Run.Totals, step); err != nil {
				return runproof.RunChange{}, err
			}
			// A run that ended before a late breach keeps its status: it has
			// an incident all the same, and what follows is judged as after it.
			breached := change.Run.Status == runproof.RunStopped || change.Run.IncidentID != ""
			underWay := breached && breaking != nil && step.UnderWayAt(breaking.Timestamp)
			r := eval.Evaluate(policy.Input{AgentID: run.AgentID, Before: change.Run.Totals, Stopped: breached, UnderWay: underWay, Step: step})
			step.TenantID, step.RunID, step.RecordedAt = tenantID, runID, now
			step.Status, step.IsInflection, step.Findings = r.Status, r.IsInflection, r.Findings
			change.Run.Totals = r.Totals
			if r.IsInflection {
				inc := s.openIncident(change.Run, step, *r.Violation, now)
				change.Incident, breaking = &inc, &step
				change.Run.IncidentID = inc.ID
				if ended { // the run ended before the breach reached runproof: there is nothing to stop
					inc.ContainedAt = nil
				} else {
					change.Run.Status, change.Run.StoppedAt = runproof.RunStopped, &now
					change.Run.TerminationReason = "policy_violation: " + r.Violation.PolicyName
				}
			}
			change.Steps = append(change.Steps, step)
			res.Steps = append(res.Steps, outcome(step))
		}
		res.Decision, res.IncidentID = AgentAllow, change.Run.IncidentID
		if change.Run.Status == runproof.RunStopped {
			res.Decision = AgentStop
		}
		return change, nil
	})
	if err != nil {
		return StepsResult{}, err
	}
	return res, nil
}

// overflow names the field of step s that brings one of the run's totals
// past its bound, t being the totals before it, and says which total, in
// its unit; "" when none is past it. The bounds are runproof.MaxExact for
// tokens and runproof.MaxFixed for cost and duration, but for a run that
// a runproof of before that bound took past it: MaxExact then, so that it
// takes steps still. Each value of a step is within its bound, so the
// sums themselves cannot overflow.
func overflow(t runproof.Totals, s runproof.Step) (field, total string) {
	tokens := "input_tokens"
	if s.InputTokens == 0 {
		tokens = "output_tokens"
	}
	amountBound := func(before int64) int64 {
		if before > runproof.MaxFixed {
			return runproof.MaxExact
		}
		return runproof.MaxFixed
	}
	costBound, durationBound := amountBound(t.CostMicrocents), amountBound(t.DurationMicros)
	after := t.Add(s)
	limit := strconv.FormatInt(runproof.MaxExact, 10)
	switch {
	case after.InputTokens > runproof.MaxExact:
		return "input_tokens", "input tokens past " + limit
	case after.OutputTokens > runproof.MaxExact:
		return "output_tokens", "output tokens past " + limit
	case after.Tokens() > runproof.MaxExact:
		return tokens, "tokens (input and output) past " + limit
	case after.CostMicrocents > costBound:
		return "cost_cents", "cost past " + runproof.FormatFixed(costBound, runproof.MicrocentsPerCent) + " cents"
	case after.DurationMicros > durationBound:
		return "duration_ms", "duration past " + runproof.FormatFixed(durationBound, runproof.MicrosPerMilli) + " ms"
	}
	return "", ""
}

// checkTotals refuses step i of a call when it brings one of the run's
// totals, t before it, past its bound.
func checkTotals(i int, t runproof.Totals, step runproof.Step) error {
	if field, total := overflow(t, step); field != "" {
		return runproof.Invalid(runproof.FieldError{Field: StepPath(i, field), Message: "would bring the run's " + total})
	}
	return nil
}

// errRunMoved marks the refusals of AppendSteps that a write of the run
// since the caller last read it would explain: a step index already taken,
// by other content or by nothing yet, or the run ended. A writer that numbers
// steps from the run's totals (OTLP ingest) reads the run again and retries
// on these, and on these only.
var errRunMoved = errors.New("the run changed since it was read")

// moved marks err as one that a concurrent write of the run would explain.
func moved(err *runproof.Error) error { return movedError{err} }

// stepConflict is the ECONFLICT of the step at place i of a call, which it
// names as a field error too (StepPath).
func stepConflict(i int, format string, args ...any) *runproof.Error {
	path, msg := StepPath(i, ""), fmt.Sprintf(format, args...)
	return &runproof.Error{Code: runproof.ECONFLICT, Message: path + ": " + msg, Fields: []runproof.FieldError{{Field: path, Message: msg}}}
}

// movedError is a *runproof.Error (its code and message are what callers
// see) that is also errRunMoved.
type movedError struct{ err *runproof.Error }

func (e movedError) Error() string   { return e.err.Error() }
func (e movedError) Unwrap() []error { return []error{e.err, errRunMoved} }

func outcome(s runproof.Step) StepOutcome {
	return StepOutcome{StepIndex: s.Index, Status: s.Status, IsInflection: s.IsInflection, ContentHash: s.ContentHash}
}

// LateGrace is how long after runproof recorded a run's end the run still
// takes steps that ended by then. Exporters send spans as they end, and
// some send them at once and side by side (OpenTelemetry JS's
// SimpleSpanProcessor): a root span, which ends its run, can arrive before
// its last child.
const LateGrace = 5 * time.Minute

// refusedLate says why a run that ended refuses a step or span (what) that
// started at start and lasted durMicros, arriving at now, or "" when it
// takes it: one that ended by the run's end (or within endSkew after it;
// the agent's times both), arriving within LateGrace of when runproof
// recorded that end (of the end itself, for a run that ended before
// runproof kept when).
func refusedLate(run runproof.Run, start time.Time, durMicros int64, now time.Time, what string) string {
	recorded := *cmp.Or(run.EndRecordedAt, run.CompletedAt)
	switch {
	case start.Add(time.Duration(durMicros) * time.Microsecond).After(run.CompletedAt.Add(endSkew)):
		return endedReason(run, what) + " (this one ended after the run did)"
	case !now.Before(recorded.Add(LateGrace)):
		return endedReason(run, what) + fmt.Sprintf(" (this one came more than %d minutes after the run ended)", int(LateGrace.Minutes()))
	}
	return ""
}

// endSkew is how much later than its run's end a late step may end: the
// times of one trace's spans need not come from one clock reading
// (OpenTelemetry JS anchors each span to the millisecond clock when it
// starts; a trace may cross processes).
const endSkew = time.Second

// endedReason says why a run that ended takes no more steps or spans
// (what): the same words on both ways in.
func endedReason(run runproof.Run, what string) string {
	if run.Status == runproof.RunStopped {
		return fmt.Sprintf("run %q was stopped, and its agent ended it: it takes no more %s", run.ID, what)
	}
	return fmt.Sprintf("run %q is %s: it takes no more %s", run.ID, run.Status, what)
}

// openIncident records the breach of a stop policy. runproof stops the run
// when it detects the breach, so containment is the detection time (the
// caller unsets it for a run that had ended: nothing was left to stop).
func (s *Service) openIncident(run runproof.Run, step runproof.Step, v runproof.Finding, now time.Time) runproof.Incident {
	return runproof.Incident{
		ID: s.newID(), TenantID: run.TenantID, RunID: run.ID,
		PolicyID: v.PolicyID, PolicyVersion: v.PolicyVersion, PolicyName: v.PolicyName,
		ViolationType: v.Type, ThresholdValue: v.Threshold, ActualValue: v.Actual,
		InflectionStepIndex: step.Index, ViolationAt: step.Timestamp, DetectedAt: now, ContainedAt: &now,
		RiskLevel:         policy.FindingRisk(v, run.Totals.CostMicrocents),
		RemediationStatus: runproof.RemediationPending, CreatedAt: now,
	}
}

// CompleteInput ends a run.
type CompleteInput struct {
	Status      runproof.RunStatus `json:"status" openapi:"enum=completed|failed|cancelled"`
	CompletedAt string             `json:"completed_at"`
}

// lastStep returns the index of a run's last step as now stored (0 for
// none, or no run: UpdateRun says so), for the transaction that ends the
// run to read it and those stored since.
func (s *Service) lastStep(ctx context.Context, tenantID, runID string) (int64, error) {
	run, err := s.store.GetRun(ctx, tenantID, runID)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	return max(run.Totals.Steps-1, 0), nil
}

// CompleteRun records the end of a run. Completing a stopped run keeps its
// status and records when the agent ended. Re-sending is a no-op; a
// different end for an ended run is ECONFLICT.
func (s *Service) CompleteRun(ctx context.Context, tenantID, runID string, in CompleteInput) (runproof.Run, error) {
	now := s.Now()
	if in.Status == "" {
		in.Status = runproof.RunCompleted
	}
	switch in.Status {
	case runproof.RunCompleted, runproof.RunFailed, runproof.RunCancelled:
	default:
		return runproof.Run{}, runproof.Invalid(runproof.FieldError{Field: "status", Message: `must be "completed", "failed" or "cancelled"`})
	}
	at := now
	if in.CompletedAt != "" {
		t, err := ParseReportedTime(in.CompletedAt, now)
		if err != nil {
			return runproof.Run{}, runproof.Invalid(runproof.FieldError{Field: "completed_at", Message: err.Error()})
		}
		at = t
	}
	params := runproof.UpdateRunParams{TenantID: tenantID, RunID: runID, StepsFrom: 1, StepsTo: 0} // no step
	if in.CompletedAt == "" {
		// A run its agent ends without saying when ends now, unless the
		// agent's clock runs ahead of the server's, so that the run started,
		// or its last step was, "later": then at the later of those. The
		// transaction reads its last step, and any stored since.
		last, err := s.lastStep(ctx, tenantID, runID)
		if err != nil {
			return runproof.Run{}, err
		}
		at, params.StepsFrom, params.StepsTo = now, last, math.MaxInt64
	}
	var out runproof.Run
	err := s.store.UpdateRun(ctx, params,
		func(st runproof.RunState) (runproof.RunChange, error) {
			run := st.Run
			if err := ownRun(ctx, run); err != nil {
				return runproof.RunChange{}, err
			}
			if in.CompletedAt == "" {
				for _, step := range st.Existing {
					if step.Timestamp.After(at) {
						at = step.Timestamp
					}
				}
			}
			if run.CompletedAt != nil {
				// A re-send is a no-op; one that says otherwise is a conflict.
				if in.CompletedAt != "" && !at.Equal(*run.CompletedAt) {
					ended := runproof.FormatTime(*run.CompletedAt)
					return runproof.RunChange{}, &runproof.Error{Code: runproof.ECONFLICT, Message: fmt.Sprintf("run %q already ended, at %s", runID, ended),
						Fields: []runproof.FieldError{{Field: "completed_at", Message: "must be " + ended + ", when the run ended, or left out"}}}
				}
				endedAs := run.EndedAs
				if endedAs == "" && run.Status != runproof.RunStopped {
					endedAs = run.Status // ended by a runproof that did not keep it apart: its status says it
				}
				if endedAs == "" || endedAs == in.Status { // "": a stopped run ended before runs kept it
					out = run
					return runproof.RunChange{Run: run}, nil
				}
				return runproof.RunChange{}, &runproof.Error{Code: runproof.ECONFLICT, Message: fmt.Sprintf("run %q already ended as %s", runID, endedAs),
					Fields: []runproof.FieldError{{Field: "status", Message: fmt.Sprintf("must be %s, as the run ended", endedAs)}}}
			}
			if at.Before(run.StartedAt) {
				if in.CompletedAt != "" {
					return runproof.RunChange{}, runproof.Invalid(runproof.FieldError{Field: "completed_at", Message: "is before the run started"})
				}
				at = run.StartedAt // the agent's clock runs ahead
			}
			run.CompletedAt, run.EndedAs, run.EndRecordedAt = &at, in.Status, &now
			if run.Status != runproof.RunStopped {
				run.Status, run.TerminationReason = in.Status, string(in.Status)
			}
			out = run
			return runproof.RunChange{Run: run}, nil
		})
	return out, err
}
