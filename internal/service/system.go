package service

import (
	"cmp"
	"context"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

// The system topic of the read API (docs/logs.md, "System"): runs as
// runproof saw and handled them, rather than as the agent reported them.

// SystemRun is one run in the system topic's list.
type SystemRun struct {
	RunID             string             `json:"run_id"`
	AgentID           string             `json:"agent_id"`
	TraceID           string             `json:"trace_id"`
	SnapshotID        string             `json:"policy_snapshot_id"`
	Status            runproof.RunStatus `json:"status"`
	StartedAt         time.Time          `json:"started_at"`
	StoppedAt         *time.Time         `json:"stopped_at,omitempty"`
	CompletedAt       *time.Time         `json:"completed_at,omitempty"`
	TerminationReason string             `json:"termination_reason,omitempty"`
	IncidentID        string             `json:"incident_id,omitempty"`
	StepCount         int64              `json:"step_count"`
	RecordedAt        time.Time          `json:"recorded_at"`
}

// SystemRunOf is a run as the system topic lists it.
func SystemRunOf(r runproof.Run) SystemRun {
	return SystemRun{RunID: r.ID, AgentID: r.AgentID, TraceID: r.TraceID, SnapshotID: r.SnapshotID, Status: r.Status,
		StartedAt: r.StartedAt, StoppedAt: r.StoppedAt, CompletedAt: r.CompletedAt, TerminationReason: r.TerminationReason,
		IncidentID: r.IncidentID, StepCount: r.Totals.Steps, RecordedAt: r.CreatedAt}
}

// TelemetryPoint is one step of a run as numbers, with the run's running
// totals up to and including it.
type TelemetryPoint struct {
	StepIndex            int64               `json:"step_index"`
	Timestamp            time.Time           `json:"timestamp"`
	Status               runproof.StepStatus `json:"status"`
	InputTokens          int64               `json:"input_tokens"`
	OutputTokens         int64               `json:"output_tokens"`
	Tokens               int64               `json:"tokens"`
	CostCents            float64             `json:"cost_cents"`
	DurationMs           float64             `json:"duration_ms"`
	CumulativeTokens     int64               `json:"cumulative_tokens"`
	CumulativeCostCents  float64             `json:"cumulative_cost_cents"`
	CumulativeDurationMs float64             `json:"cumulative_duration_ms"`
}

// LimitUsage is how much of one limit policy of the snapshot the run used.
// Threshold and Used are in the policy's unit: tokens, cents, steps or ms.
type LimitUsage struct {
	PolicyID      string              `json:"policy_id"`
	PolicyName    string              `json:"policy_name"`
	PolicyVersion int                 `json:"policy_version"`
	Type          runproof.PolicyType `json:"type"`
	Action        runproof.Action     `json:"action"`
	Threshold     float64             `json:"threshold"`
	Used          float64             `json:"used"`
	// UsedPercent is Used as a percentage of Threshold, to two decimals.
	UsedPercent float64 `json:"used_percent"`
	// FirstStep80Percent is the first step whose running total reached 80 %
	// of the threshold (the step is a warning), null if none did.
	FirstStep80Percent *int64 `json:"first_step_80_percent"`
	// FirstStepOverThreshold is the first step whose running total went
	// over the threshold (the policy was broken), null if none did.
	FirstStepOverThreshold *int64 `json:"first_step_over_threshold"`
}

// Telemetry is a run's steps as numeric series, a page of them at a time,
// its totals, and how much of each limit policy of its snapshot it used.
type Telemetry struct {
	RunID      string           `json:"run_id"`
	SnapshotID string           `json:"policy_snapshot_id"`
	Points     []TelemetryPoint `json:"points"`
	// NextFromIndex is where the next page of points starts (from_index),
	// when the run has steps after these.
	NextFromIndex *int64          `json:"next_from_index,omitempty"`
	Totals        runproof.Totals `json:"totals"`
	Limits        []LimitUsage    `json:"limits"`

	Run      runproof.Run      `json:"-"` // as read, for the answer's evidence metadata
	Snapshot runproof.Snapshot `json:"-"`
}

// Telemetry returns a run's telemetry with the points of up to limit steps
// (MaxTracePage when 0) from index from on. Totals and limits are the
// whole run's, as read. A page costs the same wherever it is in the run:
// the running totals before it are the stored ones of the step before, and
// the steps where a limit was first approached or broken, when the page
// does not show them, are found by bisection over the stored running
// totals, which only grow.
func (s *Service) Telemetry(ctx context.Context, tenantID, runID string, from int64, limit int) (Telemetry, error) {
	run, snap, err := s.RunSnapshot(ctx, tenantID, runID)
	if err != nil {
		return Telemetry{}, err
	}
	if limit <= 0 || limit > MaxTracePage {
		limit = MaxTracePage
	}
	tb := newTelemetry(run, snap, from, limit)
	if n := run.Totals.Steps; from < n {
		if from > 0 {
			if tb.tot, err = s.store.RunningTotals(ctx, tenantID, runID, from-1); err != nil {
				return Telemetry{}, err
			}
		}
		// One step past the page says whether another follows.
		steps, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, FromIndex: from, Limit: limit + 1,
			WithoutContent: true})
		if err != nil {
			return Telemetry{}, err
		}
		for i := range steps {
			tb.add(&steps[i])
		}
	}
	for _, l := range tb.limits {
		value := func(t runproof.Totals) int64 { return policy.LimitValue(l.usage.Type, t) }
		if l.approached && l.usage.FirstStep80Percent == nil {
			if l.usage.FirstStep80Percent, err = s.firstStep(ctx, run, func(t runproof.Totals) bool { return policy.Approaching(value(t), l.threshold) }); err != nil {
				return Telemetry{}, err
			}
		}
		if l.broken && l.usage.FirstStepOverThreshold == nil {
			if l.usage.FirstStepOverThreshold, err = s.firstStep(ctx, run, func(t runproof.Totals) bool { return value(t) > l.threshold }); err != nil {
				return Telemetry{}, err
			}
		}
	}
	return tb.done(), nil
}

// firstStep returns the index of the first of the run's steps (as read)
// whose running totals reached, which, once true, stays true for every
// later step; nil if none did.
func (s *Service) firstStep(ctx context.Context, run runproof.Run, reached func(runproof.Totals) bool) (*int64, error) {
	var err error
	i := sort.Search(int(run.Totals.Steps), func(i int) bool {
		if err != nil {
			return true
		}
		var t runproof.Totals
		t, err = s.store.RunningTotals(ctx, run.TenantID, run.ID, int64(i))
		return err == nil && reached(t)
	})
	if err != nil || int64(i) == run.Totals.Steps {
		return nil, err
	}
	idx := int64(i)
	return &idx, nil
}

// telemetryBuilder computes a page of a run's telemetry from its snapshot
// and its steps, added in index order from the page's first. Running
// totals are kept exactly, as the policies judge them.
type telemetryBuilder struct {
	t           Telemetry
	limits      []limitUse
	tot         runproof.Totals // the running totals before the next step added
	runTot      runproof.Totals // the run's totals when read
	from, limit int64           // the page of points kept
}

// limitUse follows one limit policy of the snapshot.
type limitUse struct {
	usage     *LimitUsage
	threshold int64 // in the fixed-point unit of the type
	// approached and broken: the run's totals reached 80 % of the
	// threshold, went over it; the steps where they first did are to find.
	approached, broken bool
}

func newTelemetry(run runproof.Run, snap runproof.Snapshot, from int64, limit int) *telemetryBuilder {
	tb := &telemetryBuilder{t: Telemetry{RunID: run.ID, SnapshotID: snap.ID, Run: run, Snapshot: snap, Points: make([]TelemetryPoint, 0, min(max(run.Totals.Steps-from, 0), int64(limit))),
		Limits: []LimitUsage{}}, runTot: run.Totals, from: from, limit: int64(limit)}
	for _, p := range snap.Policies {
		if !p.Type.IsLimit() {
			continue
		}
		n, err := runproof.ParseFixed(p.Threshold, policy.Scale(p.Type))
		if err != nil || n <= 0 {
			continue // a stored policy's threshold is canonical and positive
		}
		tb.t.Limits = append(tb.t.Limits, LimitUsage{PolicyID: p.ID, PolicyName: p.Name, PolicyVersion: p.Version,
			Type: p.Type, Action: p.Action, Threshold: float64(n) / float64(policy.Scale(p.Type))})
		v := policy.LimitValue(p.Type, run.Totals)
		tb.limits = append(tb.limits, limitUse{threshold: n, approached: policy.Approaching(v, n), broken: v > n})
	}
	for i := range tb.limits {
		tb.limits[i].usage = &tb.t.Limits[i]
	}
	return tb
}

// add adds the page's next step, or the one after the page, which only
// says that another page follows. The telemetry is of the run as read: a
// step appended since is left out, so that the points never run past the
// totals.
func (tb *telemetryBuilder) add(st *runproof.Step) {
	if st.Index >= tb.runTot.Steps {
		return
	}
	if int64(len(tb.t.Points)) == tb.limit {
		next := st.Index
		tb.t.NextFromIndex = &next
		return
	}
	before := tb.tot
	tb.tot = tb.tot.Add(*st)
	tot := tb.tot
	tb.t.Points = append(tb.t.Points, TelemetryPoint{StepIndex: st.Index, Timestamp: st.Timestamp, Status: st.Status,
		InputTokens: st.InputTokens, OutputTokens: st.OutputTokens, Tokens: st.InputTokens + st.OutputTokens,
		CostCents: runproof.Cents(st.CostMicrocents), DurationMs: runproof.Millis(st.DurationMicros),
		CumulativeTokens: tot.Tokens(), CumulativeCostCents: runproof.Cents(tot.CostMicrocents),
		CumulativeDurationMs: runproof.Millis(tot.DurationMicros)})
	// The step where a limit was first approached or broken: the totals
	// before it had not.
	for _, l := range tb.limits {
		was, v, idx := policy.LimitValue(l.usage.Type, before), policy.LimitValue(l.usage.Type, tot), st.Index
		if policy.Approaching(v, l.threshold) && !policy.Approaching(was, l.threshold) {
			l.usage.FirstStep80Percent = &idx
		}
		if v > l.threshold && was <= l.threshold {
			l.usage.FirstStepOverThreshold = &idx
		}
	}
}

// done returns the telemetry, with the run's totals and each limit's use.
func (tb *telemetryBuilder) done() Telemetry {
	tb.t.Totals = tb.runTot
	for _, l := range tb.limits {
		v := policy.LimitValue(l.usage.Type, tb.runTot)
		l.usage.Used = float64(v) / float64(policy.Scale(l.usage.Type))
		l.usage.UsedPercent = math.Round(float64(v)*10000/float64(l.threshold)) / 100
	}
	return tb.t
}

// Kinds of system event.
const (
	EventRunStarted      = "run.started"      // the run was opened and its policy snapshot frozen
	EventStepWarning     = "step.warning"     // the first warning; the first breach of each warn policy
	EventIncidentOpened  = "incident.opened"  // a stop policy was broken
	EventRunStopped      = "run.stopped"      // the run was contained: every later call answers stop
	EventStepsAfterStop  = "steps.after_stop" // the agent sent steps after the stop
	EventRunCompleted    = "run.completed"    // the agent ended the run, by its status
	EventRunFailed       = "run.failed"       //
	EventRunCancelled    = "run.cancelled"    //
	EventRunEnded        = "run.ended"        // the agent ended a stopped run (which stays stopped)
	EventExportCompleted = "export.completed" // an export of the run was made
	EventExportFailed    = "export.failed"    // an export of the run failed
)

// endEvent is the kind of the event of a run's end, by the status the run
// ended with.
var endEvent = map[runproof.RunStatus]string{
	runproof.RunCompleted: EventRunCompleted,
	runproof.RunFailed:    EventRunFailed,
	runproof.RunCancelled: EventRunCancelled,
	runproof.RunStopped:   EventRunEnded,
}

// SystemEvent is one thing runproof did or saw during a run. At is the
// server's time (when runproof recorded or did it), except for the end of
// a run, which is the time the agent gave, if any.
type SystemEvent struct {
	At        time.Time   `json:"at"`
	Kind      string      `json:"kind"`
	StepIndex *int64      `json:"step_index,omitempty"`
	Detail    EventDetail `json:"detail"`
}

// EventDetail says what a system event is about; members that do not apply
// to its kind are left out.
type EventDetail struct {
	AgentID          string `json:"agent_id,omitempty"`
	PolicySnapshotID string `json:"policy_snapshot_id,omitempty"`
	PolicyCount      *int   `json:"policy_count,omitempty"`
	// ReportedAt is the time the agent gave: the run's started_at, or the
	// step's timestamp.
	ReportedAt        *time.Time            `json:"reported_at,omitempty"`
	PolicyID          string                `json:"policy_id,omitempty"`
	PolicyName        string                `json:"policy_name,omitempty"`
	PolicyType        runproof.PolicyType   `json:"policy_type,omitempty"`
	Action            runproof.Action       `json:"action,omitempty"`
	Outcome           string                `json:"outcome,omitempty"` // approaching, exceeded or failed
	Threshold         string                `json:"threshold,omitempty"`
	Actual            string                `json:"actual,omitempty"`
	IncidentID        string                `json:"incident_id,omitempty"`
	RiskLevel         runproof.RiskLevel    `json:"risk_level,omitempty"`
	Decision          string                `json:"decision,omitempty"`
	TerminationReason string                `json:"termination_reason,omitempty"`
	Count             int64                 `json:"count,omitempty"`
	FirstStepIndex    *int64                `json:"first_step_index,omitempty"`
	LastStepIndex     *int64                `json:"last_step_index,omitempty"`
	Status            string                `json:"status,omitempty"`
	EndedAs           runproof.RunStatus    `json:"ended_as,omitempty"` // run.ended: the status the agent ended the stopped run as
	ExportID          string                `json:"export_id,omitempty"`
	BundleType        runproof.BundleType   `json:"bundle_type,omitempty"`
	Format            runproof.ExportFormat `json:"format,omitempty"`
	Checksum          string                `json:"checksum,omitempty"`
	Reason            string                `json:"reason,omitempty"`
}

// RunEvents is a run's system events.
type RunEvents struct {
	RunID  string        `json:"run_id"`
	Events []SystemEvent `json:"events"`

	Run      runproof.Run      `json:"-"` // as read, for the answer's evidence metadata
	Snapshot runproof.Snapshot `json:"-"`
}

// SystemEvents returns a run's system events in time order; its exports'
// only withExports (the caller may read export records).
func (s *Service) SystemEvents(ctx context.Context, tenantID, runID string, withExports bool) (RunEvents, error) {
	run, snap, err := s.RunSnapshot(ctx, tenantID, runID)
	if err != nil {
		return RunEvents{}, err
	}
	var se stepEvents
	if err := s.eachJudgedStep(ctx, tenantID, runID, func(st *runproof.Step) bool {
		se.add(st)
		return true
	}); err != nil {
		return RunEvents{}, err
	}
	incs, err := s.store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: tenantID, RunID: runID})
	if err != nil {
		return RunEvents{}, err
	}
	var exports []runproof.Export
	if withExports {
		if exports, err = s.store.ListExports(ctx, runproof.ListExportsParams{TenantID: tenantID, RunID: runID}); err != nil {
			return RunEvents{}, err
		}
	}
	return RunEvents{RunID: run.ID, Events: se.events(run, snap, incs, exports), Run: run, Snapshot: snap}, nil
}

// stepEvents gathers, a step at a time in index order, the system events a
// run's steps make: its first warning and each warn policy's first breach,
// and the steps sent after its stop.
type stepEvents struct {
	warned   bool
	breached map[string]bool // warn policies already reported
	list     []SystemEvent
	after    int64          // steps sent after the stop
	first    *runproof.Step // the first of them
	last     int64          // the index of the last of them
}

func (se *stepEvents) add(st *runproof.Step) {
	for _, f := range st.Findings {
		switch {
		case f.Outcome == runproof.OutcomeAfterStop:
			if se.after == 0 {
				first := *st
				se.first = &first
			}
			if se.after == 0 || se.last != st.Index { // a step, however many findings say so
				se.after++
			}
			se.last = st.Index
		case !se.warned && st.Status == runproof.StepWarning:
			se.warned = true
			if f.Action == runproof.ActionWarn && f.Outcome == runproof.OutcomeExceeded {
				se.breach(f.PolicyID)
			}
			se.list = append(se.list, stepEvent(st.RecordedAt, EventStepWarning, st, findingDetail(f)))
		case f.Action == runproof.ActionWarn && f.Outcome == runproof.OutcomeExceeded && !se.breached[f.PolicyID]:
			se.breach(f.PolicyID)
			se.list = append(se.list, stepEvent(st.RecordedAt, EventStepWarning, st, findingDetail(f)))
		}
	}
}

func (se *stepEvents) breach(policyID string) {
	if se.breached == nil {
		se.breached = map[string]bool{}
	}
	se.breached[policyID] = true
}

// stepEvent is an event of a step, which reports its index and time.
func stepEvent(at time.Time, kind string, st *runproof.Step, d EventDetail) SystemEvent {
	idx, ts := st.Index, st.Timestamp
	d.ReportedAt = &ts
	return SystemEvent{At: at, Kind: kind, StepIndex: &idx, Detail: d}
}

// events returns the run's system events: those of its steps, gathered,
// with those of the run, its incidents and its exports, in time order.
func (se *stepEvents) events(run runproof.Run, snap runproof.Snapshot, incs []runproof.Incident, exports []runproof.Export) []SystemEvent {
	count := len(snap.Policies)
	started := run.StartedAt
	events := []SystemEvent{{At: run.CreatedAt, Kind: EventRunStarted, Detail: EventDetail{AgentID: run.AgentID,
		PolicySnapshotID: snap.ID, PolicyCount: &count, ReportedAt: &started}}}
	events = append(events, se.list...)

	var stop *runproof.Incident
	for i := range incs {
		inc := &incs[i]
		if inc.ID == run.IncidentID {
			stop = inc
		}
		idx, violation := inc.InflectionStepIndex, inc.ViolationAt
		events = append(events, SystemEvent{At: inc.DetectedAt, Kind: EventIncidentOpened, StepIndex: &idx,
			Detail: EventDetail{IncidentID: inc.ID, PolicyID: inc.PolicyID, PolicyName: inc.PolicyName,
				PolicyType: inc.ViolationType, Action: runproof.ActionStop, Threshold: inc.ThresholdValue,
				Actual: inc.ActualValue, RiskLevel: inc.RiskLevel, ReportedAt: &violation}})
	}
	if run.StoppedAt != nil {
		ev := SystemEvent{At: *run.StoppedAt, Kind: EventRunStopped, Detail: EventDetail{Decision: AgentStop,
			TerminationReason: run.TerminationReason, IncidentID: run.IncidentID}}
		if stop != nil { // stopped at the breaking step, which the agent timed
			idx, violation := stop.InflectionStepIndex, stop.ViolationAt
			ev.StepIndex, ev.Detail.ReportedAt = &idx, &violation
		}
		events = append(events, ev)
	}
	if se.after > 0 {
		first, last := se.first.Index, se.last
		events = append(events, stepEvent(se.first.RecordedAt, EventStepsAfterStop, se.first, EventDetail{Count: se.after,
			FirstStepIndex: &first, LastStepIndex: &last}))
	}
	// The end's time is the agent's, which can be earlier than runproof's
	// record of the run's life: an OTLP run arrives once it has ended. It
	// is placed after that life all the same, among the exports by its time.
	endOrder := run.CreatedAt
	for _, e := range events {
		if e.At.After(endOrder) {
			endOrder = e.At
		}
	}
	if run.CompletedAt != nil {
		if run.CompletedAt.After(endOrder) {
			endOrder = *run.CompletedAt
		}
		ev := SystemEvent{At: *run.CompletedAt, Kind: endEvent[run.Status],
			Detail: EventDetail{Status: string(run.Status), TerminationReason: run.TerminationReason}}
		if run.Status == runproof.RunStopped {
			ev.Detail.EndedAs = run.EndedAs
		}
		events = append(events, ev)
	}
	for _, e := range exports {
		d := EventDetail{ExportID: e.ID, BundleType: e.BundleType, Format: e.Format, IncidentID: e.IncidentID}
		switch {
		case e.CompletedAt == nil:
			continue // still pending
		case e.Status == runproof.ExportCompleted:
			d.Checksum = e.Checksum
			events = append(events, SystemEvent{At: *e.CompletedAt, Kind: EventExportCompleted, Detail: d})
		case e.Status == runproof.ExportFailed:
			d.Reason = e.FailureReason
			events = append(events, SystemEvent{At: *e.CompletedAt, Kind: EventExportFailed, Detail: d})
		}
	}
	orderAt := func(e SystemEvent) time.Time {
		if e.Kind == endEvent[run.Status] {
			return endOrder
		}
		return e.At
	}
	slices.SortStableFunc(events, func(a, b SystemEvent) int {
		if c := orderAt(a).Compare(orderAt(b)); c != 0 {
			return c
		}
		ai, ar := lifeOrder(a)
		bi, br := lifeOrder(b)
		return cmp.Or(cmp.Compare(ai, bi), cmp.Compare(ar, br))
	})
	return events
}

// lifeOrder places events of the same time in the order of the run's
// life: its start; each step's events, by step (what it broke, then the
// incident it opened, the stop, the steps sent after it); then the run's
// end and its exports.
func lifeOrder(e SystemEvent) (step int64, rank int) {
	switch {
	case e.Kind == EventRunStarted:
		return -1, 0
	case e.StepIndex == nil:
		return math.MaxInt64, 0
	}
	return *e.StepIndex, stepEventRank[e.Kind]
}

// stepEventRank orders a step's events of the same time (0: what it broke).
var stepEventRank = map[string]int{EventIncidentOpened: 1, EventRunStopped: 2, EventStepsAfterStop: 3}

func findingDetail(f runproof.Finding) EventDetail {
	return EventDetail{PolicyID: f.PolicyID, PolicyName: f.PolicyName, PolicyType: f.Type, Action: f.Action,
		Outcome: f.Outcome, Threshold: f.Threshold, Actual: f.Actual}
}

// SystemAudit returns the tenant's audit events made by runproof itself
// (today the CLI) rather than for API callers, newest
// first, p.Limit from p.Offset among them.
func (s *Service) SystemAudit(ctx context.Context, p runproof.ListAuditParams) ([]runproof.AuditEvent, error) {
	p.System = true
	return s.store.ListAuditEvents(ctx, p)
}
