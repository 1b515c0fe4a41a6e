package service

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// GetRun returns one run of the tenant (of the agent ctx is bound to).
func (s *Service) GetRun(ctx context.Context, tenantID, runID string) (runproof.Run, error) {
	run, err := s.store.GetRun(ctx, tenantID, runID)
	if err != nil {
		return runproof.Run{}, err
	}
	return run, ownRun(ctx, run)
}

// RunFilter selects runs for ListRuns.
type RunFilter struct {
	AgentID  string
	Status   runproof.RunStatus
	From, To time.Time
	Cursor   string // from a previous page's NextCursor
	Limit    int    // 1-MaxRunsPage, default DefaultPage
}

// MaxRunsPage is the most runs a page of ListRuns holds.
const MaxRunsPage = 500

// DefaultPage is how many records a page of a list holds when the caller
// does not say.
const DefaultPage = 50

// ListRuns returns a page of runs, newest first, and the cursor of the next
// page ("" on the last one).
func (s *Service) ListRuns(ctx context.Context, tenantID string, f RunFilter) ([]runproof.Run, string, error) {
	p := runproof.ListRunsParams{TenantID: tenantID, AgentID: f.AgentID, Status: f.Status, From: f.From, To: f.To, Limit: f.Limit}
	if p.Limit == 0 {
		p.Limit = DefaultPage
	}
	if p.Limit < 1 || p.Limit > MaxRunsPage {
		return nil, "", runproof.Invalid(runproof.FieldError{Field: "limit", Message: fmt.Sprintf("must be a whole number from 1 to %d", MaxRunsPage)})
	}
	if f.Cursor != "" {
		c, err := decodeCursor(f.Cursor)
		if err != nil {
			return nil, "", runproof.Invalid(runproof.FieldError{Field: "cursor", Message: "is not a cursor this API gave out"})
		}
		p.After = &c
	}
	p.Limit++ // one more tells whether there is a next page
	runs, err := s.store.ListRuns(ctx, p)
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(runs) == p.Limit {
		runs = runs[:len(runs)-1]
		last := runs[len(runs)-1]
		next = encodeCursor(runproof.RunCursor{StartedAt: last.StartedAt, RunID: last.ID})
	}
	return runs, next, nil
}

// ValidCursor reports whether s is a cursor ListRuns gives out (it is not
// checked against the runs), so that a caller can name it among other
// parameters at fault.
func ValidCursor(s string) bool {
	_, err := decodeCursor(s)
	return err == nil
}

type cursorJSON struct {
	T  time.Time `json:"t"`
	ID string    `json:"id"`
}

func encodeCursor(c runproof.RunCursor) string {
	b, err := json.Marshal(cursorJSON{T: c.StartedAt, ID: c.RunID})
	if err != nil { // a time past the year 9999, which no run has
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor reads a cursor, which must be one encodeCursor gives for a
// run: spelt as it spells it, with a run's id and a time a run can have.
func decodeCursor(s string) (runproof.RunCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return runproof.RunCursor{}, err
	}
	var c cursorJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return runproof.RunCursor{}, err
	}
	cur := runproof.RunCursor{StartedAt: runproof.Timestamp(c.T), RunID: c.ID}
	switch {
	case !runproof.ValidID(c.ID):
		return cur, errors.New("not a run id")
	case runproof.CheckYear(c.T) != nil:
		return cur, errors.New("not a run's start")
	case encodeCursor(cur) != s:
		return cur, errors.New("not spelt as runproof spells cursors")
	}
	return cur, nil
}

// MaxTracePage is the most steps one page of a run's trace holds.
const MaxTracePage = 10_000

// TracePage is a page of a run's steps.
type TracePage struct {
	Run      runproof.Run
	Snapshot runproof.Snapshot // the policies the run is judged by
	Steps    []runproof.Step
	Next     int64 // the index the next page starts at; -1 when these are the run's last steps
}

// Trace returns up to limit steps of a run (MaxTracePage when 0) from
// index from on, in index order.
func (s *Service) Trace(ctx context.Context, tenantID, runID string, from int64, limit int) (TracePage, error) {
	run, snap, err := s.RunSnapshot(ctx, tenantID, runID)
	if err != nil {
		return TracePage{}, err
	}
	if limit <= 0 || limit > MaxTracePage {
		limit = MaxTracePage
	}
	steps, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, FromIndex: from, Limit: limit,
		MaxContentBytes: runproof.StepPageBytes})
	if err != nil {
		return TracePage{}, err
	}
	page := TracePage{Run: run, Snapshot: snap, Steps: steps, Next: -1}
	// A page ends before the run's last step (as read) when it holds limit
	// steps, or steps whose content fills it.
	if n := len(steps); n > 0 && steps[n-1].Index+1 < run.Totals.Steps {
		page.Next = steps[n-1].Index + 1
	}
	return page, nil
}

// Evaluation summarises what one policy of the snapshot saw during a run.
type Evaluation struct {
	PolicyID             string              `json:"policy_id"`
	PolicyName           string              `json:"policy_name"`
	PolicyVersion        int                 `json:"policy_version"`
	Type                 runproof.PolicyType `json:"type"`
	Action               runproof.Action     `json:"action"`
	Threshold            string              `json:"threshold"`
	Breached             bool                `json:"breached"`
	FirstApproachingStep *int64              `json:"first_approaching_step"`
	FirstExceededStep    *int64              `json:"first_exceeded_step"`
	StepsApproaching     int                 `json:"steps_approaching"`
	StepsExceeded        int                 `json:"steps_exceeded"`
	LastActual           string              `json:"last_actual,omitempty"`
	// Steps on which the policy could not be judged (an expression that
	// failed), the first of them and the last error.
	FirstFailedStep *int64 `json:"first_failed_step"`
	StepsFailed     int    `json:"steps_failed"`
	LastError       string `json:"last_error,omitempty"`
}

// Governance is how a run was judged: its snapshot, each policy's
// evaluation, the incidents it opened and the steps sent after a stop.
type Governance struct {
	Run            runproof.Run        `json:"run"`
	Snapshot       runproof.Snapshot   `json:"policy_snapshot"`
	Evaluations    []Evaluation        `json:"evaluations"`
	Incidents      []runproof.Incident `json:"incidents"`
	StepsAfterStop int                 `json:"steps_after_stop"`
}

// RunSnapshot returns a run and the policy snapshot it is judged by.
func (s *Service) RunSnapshot(ctx context.Context, tenantID, runID string) (runproof.Run, runproof.Snapshot, error) {
	run, err := s.GetRun(ctx, tenantID, runID)
	if err != nil {
		return runproof.Run{}, runproof.Snapshot{}, err
	}
	snap, err := s.store.GetSnapshot(ctx, tenantID, run.SnapshotID)
	if err != nil {
		return runproof.Run{}, runproof.Snapshot{}, err
	}
	return run, snap, nil
}

// Governance returns how a run was judged. It reads the run's steps a
// page at a time: its memory does not grow with the run.
func (s *Service) Governance(ctx context.Context, tenantID, runID string) (Governance, error) {
	run, snap, err := s.RunSnapshot(ctx, tenantID, runID)
	if err != nil {
		return Governance{}, err
	}
	incs, err := s.store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: tenantID, RunID: runID})
	if err != nil {
		return Governance{}, err
	}
	g := Governance{Run: run, Snapshot: snap, Incidents: incs, Evaluations: make([]Evaluation, len(snap.Policies))}
	byID := map[string]*Evaluation{}
	for i, p := range snap.Policies {
		g.Evaluations[i] = Evaluation{PolicyID: p.ID, PolicyName: p.Name, PolicyVersion: p.Version,
			Type: p.Type, Action: p.Action, Threshold: p.Threshold}
		byID[p.ID] = &g.Evaluations[i]
	}
	err = s.eachJudgedStep(ctx, tenantID, runID, func(st *runproof.Step) bool {
		g.count(st, byID)
		return true
	})
	return g, err
}

// eachJudgedStep hands fn each step of a run that has findings, in index
// order and without its content, reading them a page at a time, so that
// what only sums up how steps were judged does not hold them all. It stops
// early when fn returns false.
func (s *Service) eachJudgedStep(ctx context.Context, tenantID, runID string, fn func(*runproof.Step) bool) error {
	for from := int64(0); ; {
		steps, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, FromIndex: from, Limit: MaxTracePage, Judged: true})
		if err != nil {
			return err
		}
		for i := range steps {
			if !fn(&steps[i]) {
				return nil
			}
		}
		if len(steps) < MaxTracePage {
			return nil
		}
		from = steps[len(steps)-1].Index + 1
	}
}

// count adds what one step's findings say to the evaluations of their
// policies (byID) and to the steps sent after a stop.
func (g *Governance) count(st *runproof.Step, byID map[string]*Evaluation) {
	for _, f := range st.Findings {
		if f.Outcome == runproof.OutcomeAfterStop {
			g.StepsAfterStop++
			continue
		}
		e := byID[f.PolicyID]
		if e == nil {
			continue
		}
		idx := st.Index
		if f.Outcome == runproof.OutcomeFailed {
			e.StepsFailed++
			e.LastError = f.Error
			if e.FirstFailedStep == nil {
				e.FirstFailedStep = &idx
			}
			continue
		}
		e.Threshold, e.LastActual = f.Threshold, f.Actual
		switch f.Outcome {
		case runproof.OutcomeApproaching:
			e.StepsApproaching++
			if e.FirstApproachingStep == nil {
				e.FirstApproachingStep = &idx
			}
		case runproof.OutcomeExceeded:
			e.StepsExceeded++
			e.Breached = true
			if e.FirstExceededStep == nil {
				e.FirstExceededStep = &idx
			}
		}
	}
}

// ReplayWindow is the half-width of the replay window around its centre.
const ReplayWindow = 30 * time.Second

// MaxReplayAuditEvents bounds the audit events of one replay.
const MaxReplayAuditEvents = 10_000

// ReplayItem is one entry of a replay, tagged with where it comes from.
type ReplayItem struct {
	Source string    `json:"source"` // step, system or audit
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"` // step type, system event name or audit action
	Data   any       `json:"data"`
}

// Replay is the 60-second window around a run's inflection step (or its end
// when it has none), merging in time order the run's steps, its system
// events and the tenant's audit events.
type Replay struct {
	RunID       string       `json:"run_id"`
	Centre      time.Time    `json:"centre"`
	CentredOn   string       `json:"centred_on"` // inflection or run_end
	WindowStart time.Time    `json:"window_start"`
	WindowEnd   time.Time    `json:"window_end"`
	Items       []ReplayItem `json:"items"`
	AuditEvents int          `json:"audit_events"` // audit events among Items
	// Truncated is true when the window holds more than
	// MaxReplayAuditEvents audit events: Items then holds the latest ones.
	Truncated bool `json:"truncated"`
	// StepsTruncated is true when the window holds more than MaxTracePage
	// steps, or more content than runproof.StepPageBytes (or may): Items
	// then holds those around the centre's step (the inflection, or the
	// last), from it on when the content before it fills the page.
	StepsTruncated bool `json:"steps_truncated"`

	Run      runproof.Run      `json:"-"` // as read, for the answer's evidence metadata
	Snapshot runproof.Snapshot `json:"-"`
}

// windowSteps returns the steps of rp's window, at most MaxTracePage and
// about runproof.StepPageBytes of content, the centre's among them: read
// from half that many before centre on (or the run's last page; from the
// centre on when the content before it fills the page), then, while the
// page has room, the window's steps before those, from the first
// (timestamps need not follow indexes). StepsTruncated says the window
// held more, or may have.
func (s *Service) windowSteps(ctx context.Context, rp *Replay, centre int64) ([]runproof.Step, error) {
	from := max(min(centre-MaxTracePage/2, rp.Run.Totals.Steps-MaxTracePage), 0)
	p := runproof.ListStepsParams{TenantID: rp.Run.TenantID, RunID: rp.RunID, FromIndex: from,
		From: rp.WindowStart, To: rp.WindowEnd.Add(time.Microsecond), Limit: MaxTracePage + 1,
		MaxContentBytes: runproof.StepPageBytes}
	steps, err := s.store.ListSteps(ctx, p)
	if err != nil {
		return nil, err
	}
	left := runproof.StepPageBytes - contentBytes(steps)
	switch {
	case len(steps) > MaxTracePage:
		rp.StepsTruncated = true
		return steps[:MaxTracePage], nil
	case left <= 0 && steps[len(steps)-1].Index < centre:
		// The steps before the centre filled the page: it starts at the
		// centre instead.
		p.FromIndex = centre
		rp.StepsTruncated = true
		steps, err := s.store.ListSteps(ctx, p)
		return steps[:min(len(steps), MaxTracePage)], err
	case left <= 0: // the content filled the page
		rp.StepsTruncated = true
		return steps, nil
	case from == 0:
		return steps, nil
	}
	room := MaxTracePage - len(steps)
	p.FromIndex, p.Limit, p.MaxContentBytes = 0, room+1, left
	earlier, err := s.store.ListSteps(ctx, p)
	if err != nil {
		return nil, err
	}
	n := 0
	for n < len(earlier) && earlier[n].Index < from {
		n++
	}
	if n > room {
		n, rp.StepsTruncated = room, true
	}
	if contentBytes(earlier[:n]) >= left {
		rp.StepsTruncated = true
	}
	return append(earlier[:n:n], steps...), nil
}

// contentBytes is the size of the steps' content.
func contentBytes(steps []runproof.Step) int64 {
	var n int64
	for _, st := range steps {
		n += int64(len(st.Content))
	}
	return n
}

// Replay returns the window of events around a run's inflection. The
// tenant's audit events of the window are among them only withAudit: for
// a caller who may read the audit log.
func (s *Service) Replay(ctx context.Context, tenantID, runID string, withAudit bool) (Replay, error) {
	run, snap, err := s.RunSnapshot(ctx, tenantID, runID)
	if err != nil {
		return Replay{}, err
	}
	incs, err := s.store.ListIncidents(ctx, runproof.ListIncidentsParams{TenantID: tenantID, RunID: runID})
	if err != nil {
		return Replay{}, err
	}
	rp := Replay{RunID: runID, CentredOn: "inflection", Items: []ReplayItem{}, Run: run, Snapshot: snap}
	centreStep := run.Totals.Steps - 1 // the step the window's steps are read around
	if i := slices.IndexFunc(incs, func(inc runproof.Incident) bool { return inc.ID == run.IncidentID }); i >= 0 {
		rp.Centre, centreStep = incs[i].ViolationAt, incs[i].InflectionStepIndex
	} else {
		rp.CentredOn, rp.Centre = "run_end", run.StartedAt
		if run.CompletedAt != nil {
			rp.Centre = *run.CompletedAt
		} else if run.Totals.Steps > 0 {
			last, err := s.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: tenantID, RunID: runID, FromIndex: run.Totals.Steps - 1, Limit: 1})
			if err != nil {
				return Replay{}, err
			}
			if len(last) == 1 {
				rp.Centre = last[0].Timestamp
			}
		}
	}
	rp.WindowStart, rp.WindowEnd = rp.Centre.Add(-ReplayWindow), rp.Centre.Add(ReplayWindow)
	in := func(t time.Time) bool { return !t.Before(rp.WindowStart) && !t.After(rp.WindowEnd) }

	steps, err := s.windowSteps(ctx, &rp, centreStep)
	if err != nil {
		return Replay{}, err
	}
	for _, st := range steps {
		rp.Items = append(rp.Items, ReplayItem{Source: "step", At: st.Timestamp, Kind: st.StepType, Data: st})
	}
	// The run's system events as SystemEvents gives them, but those of its
	// steps, which are here as steps, and of its exports, which its audit
	// events tell. An event is in the window, and placed there, by its
	// time or else by the agent's it reports (a run sent long after it
	// ran, or from a clock that is off, starts and breaks in the window
	// of its steps' times).
	for _, ev := range (&stepEvents{}).events(run, snap, incs, nil) {
		at := ev.At
		if !in(at) && ev.Detail.ReportedAt != nil {
			at = *ev.Detail.ReportedAt
		}
		if in(at) {
			rp.Items = append(rp.Items, ReplayItem{Source: "system", At: at, Kind: ev.Kind, Data: ev})
		}
	}

	if withAudit {
		if err := s.replayAudit(ctx, tenantID, &rp); err != nil {
			return Replay{}, err
		}
	}
	sort.SliceStable(rp.Items, func(i, j int) bool { return rp.Items[i].At.Before(rp.Items[j].At) })
	return rp, nil
}

// replayAudit adds the tenant's audit events of the replay's window, newest
// first, page after page, up to MaxReplayAuditEvents. Events recorded while
// it reads are newer than the rest and push the others down the pages: an
// event seen twice is counted once.
func (s *Service) replayAudit(ctx context.Context, tenantID string, rp *Replay) error {
	const page = 1000
	seen := map[string]bool{}
	// Oldest first, as the rest of the replay, events of the same time
	// too (the pages come newest first).
	start := len(rp.Items)
	defer func() { slices.Reverse(rp.Items[start:]) }()
	for offset := 0; ; offset += page {
		events, err := s.store.ListAuditEvents(ctx, runproof.ListAuditParams{TenantID: tenantID,
			From: rp.WindowStart, To: rp.WindowEnd.Add(time.Microsecond), Limit: page, Offset: offset})
		if err != nil {
			return err
		}
		for _, ev := range events {
			if seen[ev.ID] {
				continue
			}
			if len(seen) == MaxReplayAuditEvents {
				rp.Truncated = true
				return nil
			}
			seen[ev.ID] = true
			rp.AuditEvents++
			rp.Items = append(rp.Items, ReplayItem{Source: "audit", At: ev.OccurredAt, Kind: ev.Action, Data: ev})
		}
		if len(events) < page {
			return nil
		}
	}
}

// GetIncident returns one incident of the tenant.
func (s *Service) GetIncident(ctx context.Context, tenantID, id string) (runproof.Incident, error) {
	return s.store.GetIncident(ctx, tenantID, id)
}

// ListIncidents returns the tenant's incidents, newest first.
func (s *Service) ListIncidents(ctx context.Context, p runproof.ListIncidentsParams) ([]runproof.Incident, error) {
	return s.store.ListIncidents(ctx, p)
}

// ListAudit returns the tenant's audit events, newest first.
func (s *Service) ListAudit(ctx context.Context, p runproof.ListAuditParams) ([]runproof.AuditEvent, error) {
	return s.store.ListAuditEvents(ctx, p)
}

// Record stores audit events, filling in their id and time when empty.
func (s *Service) Record(ctx context.Context, events ...runproof.AuditEvent) error {
	for i := range events {
		if events[i].ID == "" {
			events[i].ID = s.newID()
		}
		if events[i].OccurredAt.IsZero() {
			events[i].OccurredAt = s.Now()
		}
	}
	return s.store.AppendAuditEvents(ctx, events...)
}
