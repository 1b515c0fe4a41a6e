package evidence

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// BuildEvidence builds and seals the evidence bundle of a run, with or
// without an incident. Its id is "EVD-" + opts.BundleID.
func BuildEvidence(src Source, opts Options) (EvidenceBundle, error) {
	b, _, err := buildEvidence(src, opts, runproof.BundleEvidence, PrefixEvidence)
	if err != nil {
		return EvidenceBundle{}, err
	}
	return b, b.SetContentHash()
}

// check refuses a source that cannot make a bundle, before its steps are
// read; scan checks the steps.
func check(src Source, opts Options) error {
	run := src.Run
	switch {
	case opts.BundleID == "":
		return runproof.Errorf(runproof.EINVALID, "a bundle id is required")
	case opts.CreatedAt.IsZero():
		return runproof.Errorf(runproof.EINVALID, "a bundle creation time is required")
	case run.ID == "":
		return runproof.Errorf(runproof.EINVALID, "a bundle needs a run")
	case src.Snapshot.ID != run.SnapshotID:
		return fmt.Errorf("evidence: policy snapshot %q is not the one of run %q (%q)", src.Snapshot.ID, run.ID, run.SnapshotID)
	}
	if inc := src.Incident; inc != nil {
		switch {
		case inc.RunID != run.ID:
			return runproof.Errorf(runproof.EINVALID, "incident %q belongs to run %q, not %q", inc.ID, inc.RunID, run.ID)
		case inc.InflectionStepIndex < 0 || inc.InflectionStepIndex >= run.Totals.Steps:
			return fmt.Errorf("evidence: incident %q: inflection step %d is not among the %d steps of run %q", inc.ID, inc.InflectionStepIndex, run.Totals.Steps, run.ID)
		}
		if !slices.Contains(runproof.RemediationStatuses, inc.RemediationStatus) {
			return runproof.Errorf(runproof.EINVALID, "incident %q: unknown remediation status %q", inc.ID, inc.RemediationStatus)
		}
	}
	return nil
}

// scan ranges over the run's steps once, calling each for every step, and
// returns their totals and every policy they went over. It refuses a
// source that does not hold the whole run in index order: a bundle never
// leaves anything out silently.
func scan(src Source, each func(runproof.Step) error) (runproof.Totals, []Breach, error) {
	run, inc := src.Run, src.Incident
	var t runproof.Totals
	var breaches Breaches
	if src.Steps != nil {
		for s, err := range src.Steps {
			if err != nil {
				return t, nil, err
			}
			if s.Index != t.Steps {
				return t, nil, fmt.Errorf("evidence: run %q: step %d found at position %d: the source must hold every step in index order", run.ID, s.Index, t.Steps)
			}
			if err := checkStored(run.ID, s); err != nil {
				return t, nil, err
			}
			if s.IsInflection && (inc == nil || inc.InflectionStepIndex != s.Index) {
				return t, nil, runproof.Errorf(runproof.ECONFLICT, "step %d of run %q is the inflection of an incident that the run does not name: "+
					"the database was changed behind runproof's back, and no bundle is made of evidence that contradicts itself", s.Index, run.ID)
			}
			t = t.Add(s)
			breaches.Add(s)
			if err := each(s); err != nil {
				return t, nil, err
			}
		}
	}
	switch {
	case t.Steps != run.Totals.Steps:
		// Steps are stored with the run's count, in one transaction, and
		// never removed: a shortfall is a store that lost some.
		return t, nil, runproof.Errorf(runproof.ECONFLICT, "run %q records %d steps but only %d could be read: a bundle holds every step, so none is made",
			run.ID, run.Totals.Steps, t.Steps)
	case t != run.Totals:
		return t, nil, runproof.Errorf(runproof.ECONFLICT, "run %q records totals of %s, its steps add up to %s: "+
			"the database was changed behind runproof's back, and no bundle is made of evidence that contradicts itself",
			run.ID, totalsText(run.Totals), totalsText(t))
	}
	return t, breaches.List(), nil
}

// checkStored checks a stored step against its content_hash, and its
// content, when read, against its content_digest: a step changed in the
// database behind runproof's back would otherwise be signed into a bundle
// that runproof verify then refuses.
func checkStored(runID string, s runproof.Step) error {
	const behind = "it was changed in the database behind runproof's back, and no bundle is made of evidence that does not match its own hashes"
	if h := runproof.StepContentHash(s); h != s.ContentHash {
		return runproof.Errorf(runproof.ECONFLICT, "step %d of run %q does not match its content_hash (stored %s, its fields give %s): %s",
			s.Index, runID, s.ContentHash, h, behind)
	}
	if s.Content != nil && runproof.DigestBytes(s.Content) != s.ContentDigest {
		return runproof.Errorf(runproof.ECONFLICT, "the content of step %d of run %q does not match its content_digest: %s", s.Index, runID, behind)
	}
	return nil
}

// buildEvidence builds the evidence members of a bundle, and sorts the
// steps after the inflection (none without an incident).
func buildEvidence(src Source, opts Options, typ runproof.BundleType, prefix string) (EvidenceBundle, afterInflection, error) {
	var after afterInflection
	if err := check(src, opts); err != nil {
		return EvidenceBundle{}, after, err
	}
	run, inc := src.Run, src.Incident
	b := EvidenceBundle{
		SchemaVersion: SchemaVersion, BundleID: prefix + opts.BundleID, BundleType: typ,
		CreatedAt: runproof.FormatTime(opts.CreatedAt),
		RunID:     run.ID, TraceID: run.TraceID, TenantID: run.TenantID, AgentID: run.AgentID,
		RunGoal: run.Goal, RunStatus: run.Status, RunStartedAt: runproof.FormatTime(run.StartedAt),
		RunCompletedAt: optTime(run.CompletedAt), RunEndedAs: run.EndedAs, TerminationReason: run.TerminationReason,
		ExportedBy: cmp.Or(opts.ExportedBy, "system"), ExportReason: opts.ExportReason,
	}
	var spool Spool
	if opts.NewSpool != nil {
		var err error
		if spool, err = opts.NewSpool(); err != nil {
			return EvidenceBundle{}, after, err
		}
	}
	keep := opts.KeepRows && run.Totals.Steps <= int64(maxKeptRows)
	steps := newStepWriter(spool, keep)
	if keep && opts.IncludeRawSteps {
		// The run's count as it stood (steps may come meanwhile): room
		// for the rows, not a slice grown and copied over and over.
		steps.list.rows = make([]TraceStepEvidence, 0, run.Totals.Steps)
	}
	contained := containedAt(src)
	t, breaches, err := scan(src, func(s runproof.Step) error {
		if inc != nil && s.Index > inc.InflectionStepIndex {
			after.add(s, contained, inc.ViolationAt)
		}
		if !opts.IncludeRawSteps {
			return nil
		}
		e := stepEvidence(s, opts.IncludeContent)
		if opts.OnStep != nil {
			if err := opts.OnStep(e); err != nil {
				return err
			}
		}
		return steps.add(e)
	})
	if err != nil {
		return EvidenceBundle{}, after, err
	}
	b.Steps = steps.list
	b.PolicyContext = policyContext(src.Snapshot, inc, breaches)
	b.TotalSteps, b.TotalTokens = t.Steps, t.Tokens()
	b.TotalCostCents, b.TotalDurationMs = runproof.Cents(t.CostMicrocents), runproof.Millis(t.DurationMicros)
	b.StepsOmitted = t.Steps - b.Steps.Len()
	if t.Steps > 0 { // scan read indexes 0 to t.Steps-1
		first, last := int64(0), t.Steps-1
		b.FirstStepIndex, b.LastStepIndex = &first, &last
	}
	if inc != nil {
		idx := inc.InflectionStepIndex
		b.IncidentID, b.ViolationStepIndex = inc.ID, &idx
		b.ViolationTimestamp = runproof.FormatTime(inc.ViolationAt)
		b.DetectionTimestamp = runproof.FormatTime(inc.DetectedAt)
		b.ContainmentTimestamp = optTime(contained)
		b.RemediationStatus, b.RemediationNotes = inc.RemediationStatus, inc.RemediationNotes
	}
	return b, after, nil
}

func policyContext(snap runproof.Snapshot, inc *runproof.Incident, breaches []Breach) PolicyContext {
	pc := PolicyContext{PolicySnapshotID: snap.ID, ActivePolicies: make([]ActivePolicy, 0, len(snap.Policies)),
		Breaches: slices.Clone(breaches)}
	for _, p := range snap.Policies {
		pc.ActivePolicies = append(pc.ActivePolicies, ActivePolicy{ID: p.ID, Name: p.Name, Version: p.Version,
			Type: p.Type, Threshold: p.Threshold, Action: p.Action, StepTypes: slices.Clone(p.StepTypes), Expression: p.Expression})
	}
	if inc != nil {
		pc.ViolatedPolicyID, pc.ViolatedPolicyName, pc.ViolatedPolicyVersion = inc.PolicyID, inc.PolicyName, inc.PolicyVersion
		pc.ViolationType, pc.ThresholdValue, pc.ActualValue = inc.ViolationType, inc.ThresholdValue, inc.ActualValue
	}
	return pc
}

func stepEvidence(s runproof.Step, withContent bool) TraceStepEvidence {
	e := TraceStepEvidence{StepIndex: s.Index, Timestamp: runproof.FormatTime(s.Timestamp), StepType: s.StepType,
		InputTokens: s.InputTokens, OutputTokens: s.OutputTokens, Tokens: s.InputTokens + s.OutputTokens,
		CostCents: runproof.Cents(s.CostMicrocents), DurationMs: runproof.Millis(s.DurationMicros),
		Status: s.Status, IsInflection: s.IsInflection, ContentHash: s.ContentHash, ContentDigest: s.ContentDigest}
	if !s.RecordedAt.IsZero() {
		e.RecordedAt = runproof.FormatTime(s.RecordedAt)
	}
	if withContent {
		e.Content = s.Content
	}
	return e
}

// containedAt is when the run was stopped: the incident's containment time,
// else the run's stop time; nil when neither is recorded.
func containedAt(src Source) *time.Time {
	if src.Incident != nil && src.Incident.ContainedAt != nil {
		return src.Incident.ContainedAt
	}
	if src.Run.Status == runproof.RunStopped {
		return src.Run.StoppedAt
	}
	return nil
}

func optTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return runproof.FormatTime(*t)
}

// seconds is to − from in seconds at microsecond precision, and 0 when to
// is before from (an agent clock ahead of runproof's).
func seconds(from, to time.Time) float64 {
	d := runproof.Timestamp(to).Sub(runproof.Timestamp(from))
	return float64(max(d, 0).Microseconds()) / 1e6
}

func formatSeconds(s float64) string { return strconv.FormatFloat(s, 'f', -1, 64) }

// BuildSOC2 builds and seals the SOC 2 bundle of a run, with or without an
// incident. Its id is "SOC2-" + opts.BundleID. The attestation statement
// cites the evidence digest (the digest of the evidence members, see
// SOC2Bundle.EvidenceDigest): the content_hash covers the statement, so the
// statement cannot cite it.
func BuildSOC2(src Source, opts Options) (SOC2Bundle, error) {
	ev, after, err := buildEvidence(src, opts, runproof.BundleSOC2, PrefixSOC2)
	if err != nil {
		return SOC2Bundle{}, err
	}
	b := SOC2Bundle{EvidenceBundle: ev, ReviewStatus: ReviewPending, CriteriaCovered: []string{"CC7.2", "CC7.3", "CC7.4"}}
	if b.EvidenceDigest, err = digest(&b.EvidenceBundle); err != nil {
		return SOC2Bundle{}, err
	}
	b.ControlMappings = controlMappings(src, &ev, after)
	start, end := opts.PeriodStart, opts.PeriodEnd
	switch {
	case src.Incident != nil:
		from, to := CompliancePeriod(src.Incident.DetectedAt, start, end)
		start, end = &from, &to
	case start != nil || end != nil:
		from, to := CompliancePeriod(src.Run.StartedAt, start, end)
		start, end = &from, &to
	}
	b.CompliancePeriodStart, b.CompliancePeriodEnd = optTime(start), optTime(end)
	// A sign-off on an earlier bundle of the same steps (append-only and
	// numbered without gaps), all of them in it, and the same remediation
	// status, on which the controls depend, and notes (sameNotes), holds
	// for this one if it holds every step too.
	if r := src.Review; r != nil && r.RunSteps == ev.TotalSteps && ev.StepsOmitted == 0 && r.Remediation == src.Remediation() && sameNotes(r, src) {
		b.ReviewStatus, b.ReviewedBy, b.ReviewedAt, b.AuditorNotes = r.Status, r.ReviewedBy, runproof.FormatTime(r.ReviewedAt), r.Notes
		b.ReviewKeyID = r.KeyID
	}
	b.AttestationStatement = attestation(src, &b)
	return b, b.setContentHash() // the evidence digest is set
}

// CompliancePeriod is the compliance period of a SOC 2 bundle about at
// (its incident's detection; its run's start when it has none): the ends
// asked for, each defaulting to that of at's UTC day, from midnight to the
// next midnight.
func CompliancePeriod(at time.Time, start, end *time.Time) (time.Time, time.Time) {
	day := at.UTC().Truncate(24 * time.Hour)
	next := day.Add(24 * time.Hour)
	return *cmp.Or(start, &day), *cmp.Or(end, &next)
}

// totalsText states every member of totals, for a message that compares
// two of them.
func totalsText(t runproof.Totals) string {
	return fmt.Sprintf("%d input and %d output tokens, %d µ¢ and %d µs", t.InputTokens, t.OutputTokens, t.CostMicrocents, t.DurationMicros)
}

// sameNotes reports whether a review was given on a bundle showing the
// remediation notes src shows. One given before their digest was recorded
// has none: its bundle showed no notes, so it holds while there are none.
func sameNotes(r *runproof.Review, src Source) bool {
	if r.RemediationNotesDigest == "" {
		return src.Incident == nil || src.Incident.RemediationNotes == ""
	}
	return r.RemediationNotesDigest == src.RemediationNotesDigest()
}

// Default SOC 2 controls: the Trust Services Criteria an incident bears on.
var controls = []struct{ id, name, description string }{
	{"CC7.2", "Incident Response", "The entity responds to identified security incidents."},
	{"CC7.3", "Incident Management", "The entity manages incidents to minimize impact."},
	{"CC7.4", "Analysis and Remediation", "The entity analyzes incidents and implements improvements."},
}

// controlMappings decides each control's status from what the bundle holds:
//
//	CC7.2 DEMONSTRATED: a violation was detected and contained (the run was
//	      stopped, and the agent sent no step after it was told to stop);
//	      PARTIAL: detected, and not contained or not heeded;
//	      NOT_APPLICABLE: no violation.
//	CC7.3 DEMONSTRATED: an incident and its full trace in the bundle; PARTIAL:
//	      steps omitted; NOT_APPLICABLE: no incident.
//	CC7.4 DEMONSTRATED: the full trace and a completed remediation; PARTIAL
//	      otherwise (remediation pending or in progress, or steps omitted);
//	      NOT_APPLICABLE: no incident.
func controlMappings(src Source, b *EvidenceBundle, after afterInflection) []SOC2ControlMapping {
	out := make([]SOC2ControlMapping, len(controls))
	for i, c := range controls {
		out[i] = SOC2ControlMapping{ControlID: c.id, ControlName: c.name, ControlDescription: c.description,
			ComplianceStatus: StatusNotApplicable}
	}
	inc := src.Incident
	if inc == nil {
		out[0].EvidenceProvided = "No stop policy was breached in this run, so there was no incident to respond to."
		out[1].EvidenceProvided = "No incident was opened for this run."
		out[2].EvidenceProvided = "No incident was opened for this run, so there was nothing to analyse or remediate."
		return out
	}
	breach := breachText(inc)
	detected := fmt.Sprintf("detected %s s after the violation", formatSeconds(seconds(inc.ViolationAt, inc.DetectedAt)))
	if ahead := seconds(inc.DetectedAt, inc.ViolationAt); ahead >= 1 {
		// The step's time is the agent's clock, the detection runproof's.
		detected += fmt.Sprintf(" (the violation's time is the agent's clock, %s s ahead of runproof's)", formatSeconds(ahead))
	}
	if c := containedAt(src); c != nil && after.afterStop > 0 {
		out[0].ComplianceStatus = StatusPartial
		out[0].EvidenceProvided = fmt.Sprintf("%s; %s and run stopped %s s after detection, "+
			"but the agent sent %s after it was told to stop, from step %d on (recorded_at after containment_timestamp).",
			breach, detected, formatSeconds(seconds(inc.DetectedAt, *c)), count(after.afterStop, "more step", "more steps"), after.firstAfter)
	} else if c != nil {
		out[0].ComplianceStatus = StatusDemonstrated
		out[0].EvidenceProvided = fmt.Sprintf("%s; %s and run stopped %s s after detection.",
			breach, detected, formatSeconds(seconds(inc.DetectedAt, *c)))
	} else {
		out[0].ComplianceStatus = StatusPartial
		out[0].EvidenceProvided = fmt.Sprintf("%s; %s, but no containment is recorded: the run was not stopped.",
			breach, detected)
	}

	full := b.StepsOmitted == 0
	if full {
		out[1].ComplianceStatus = StatusDemonstrated
		whole := "all " + count(b.TotalSteps, "step", "steps")
		if b.TotalSteps == 1 {
			whole = "its only step"
		}
		out[1].EvidenceProvided = fmt.Sprintf("Incident opened automatically on detection, with the full trace in this bundle: %s (%d to %d), inflection at step %d.",
			whole, *b.FirstStepIndex, *b.LastStepIndex, inc.InflectionStepIndex)
	} else {
		out[1].ComplianceStatus = StatusPartial
		out[1].EvidenceProvided = fmt.Sprintf("Incident opened automatically on detection, but its trace is not in this export: %d of %d steps omitted (the totals are complete).",
			b.StepsOmitted, b.TotalSteps)
	}

	// The status alone decides; a sign-off carries over to later bundles of
	// the same status and notes (BuildSOC2).
	remediation := strings.ReplaceAll(inc.RemediationStatus, "_", " ")
	trace := fmt.Sprintf("Complete execution trace of %s available for root-cause analysis", count(b.TotalSteps, "step", "steps"))
	switch {
	case full && inc.RemediationStatus == runproof.RemediationCompleted:
		out[2].ComplianceStatus = StatusDemonstrated
		what := "what was done is in remediation_notes"
		if inc.RemediationNotes == "" {
			what = "but no notes record what was done"
		}
		out[2].EvidenceProvided = fmt.Sprintf("%s; remediation %s, %s.", trace, remediation, what)
	case full && inc.RemediationStatus == runproof.RemediationInProgress:
		out[2].ComplianceStatus = StatusPartial
		out[2].EvidenceProvided = fmt.Sprintf("%s; remediation %s, not completed yet.", trace, remediation)
	case full:
		out[2].ComplianceStatus = StatusPartial
		out[2].EvidenceProvided = fmt.Sprintf("%s, but remediation pending: no remediation is recorded yet.", trace)
	default:
		out[2].ComplianceStatus = StatusPartial
		out[2].EvidenceProvided = fmt.Sprintf("The execution trace is not in this export (%d steps omitted), so root-cause analysis needs a full export; remediation %s.", b.StepsOmitted, remediation)
	}
	return out
}

// breachText states a breach for auditors, with its figures and units.
func breachText(inc *runproof.Incident) string {
	at := fmt.Sprintf("at step %d", inc.InflectionStepIndex)
	var what string
	switch t := inc.ViolationType; {
	case t.IsLimit():
		kind, _ := strings.CutSuffix(string(t), "_limit") // cost, token, step, duration
		what = fmt.Sprintf("%s limit of %s %s exceeded %s (%s %s)", kind, inc.ThresholdValue, t.UnitFor(inc.ThresholdValue), at,
			inc.ActualValue, t.UnitFor(inc.ActualValue))
	case t == runproof.PolicyStepTypeDenied:
		what = fmt.Sprintf(`denied step type "%s" used %s`, inc.ActualValue, at)
	default:
		what = fmt.Sprintf(`rule "%s" matched %s`, inc.ThresholdValue, at)
	}
	return fmt.Sprintf(`Policy "%s": %s`, inc.PolicyName, what) // as stored: %q would escape a right-to-left mark
}

// otherBreaches names the policies the steps went over but the incident's,
// with their actions: `"cost cap" (stop) and "slow" (warn)`; "" when none.
func otherBreaches(pc PolicyContext) string {
	var names []string
	for _, br := range pc.Breaches {
		if br.PolicyID != pc.ViolatedPolicyID {
			names = append(names, fmt.Sprintf(`"%s" (%s)`, br.PolicyName, br.Action))
		}
	}
	switch n := len(names); n {
	case 0:
		return ""
	case 1:
		return names[0]
	default:
		return strings.Join(names[:n-1], ", ") + " and " + names[n-1]
	}
}

func attestation(src Source, b *SOC2Bundle) string {
	var s strings.Builder
	if inc := src.Incident; inc != nil {
		fmt.Fprintf(&s, `This SOC 2 bundle %s covers incident %s of run %s (tenant %s): policy "%s" was breached at inflection step %d at %s.`,
			b.BundleID, inc.ID, b.RunID, b.TenantID, inc.PolicyName, inc.InflectionStepIndex, b.ViolationTimestamp)
	} else {
		fmt.Fprintf(&s, "This SOC 2 bundle %s covers run %s (tenant %s), in which no stop policy was breached, so no incident was opened.", b.BundleID, b.RunID, b.TenantID)
		if b.RunStatus == runproof.RunRunning {
			fmt.Fprintf(&s, " The run was still running when the bundle was made: it covers its %s up to then.", count(b.TotalSteps, "step", "steps"))
		}
	}
	if others := otherBreaches(b.PolicyContext); others != "" && src.Incident != nil {
		fmt.Fprintf(&s, " Its steps also went over %s.", others)
	} else if others != "" {
		fmt.Fprintf(&s, " Its steps went over %s.", others)
	}
	if b.CompliancePeriodStart != "" {
		what := "incident, not the tenant's other incidents"
		if src.Incident == nil {
			what = "run, not the tenant's other runs"
		}
		fmt.Fprintf(&s, " Its compliance period is %s to %s; it holds the evidence of this %s in that period, which have bundles of their own.",
			b.CompliancePeriodStart, b.CompliancePeriodEnd, what)
	}
	fmt.Fprintf(&s, " Its evidence members (run metadata, policy snapshot %s, %d of %d steps and the run's exact totals) have the evidence digest %s:"+
		" SHA-256 of their RFC 8785 form, without content_hash and the SOC 2 members; the bundle's content_hash also covers this statement.",
		b.PolicyContext.PolicySnapshotID, b.Steps.Len(), b.TotalSteps, b.EvidenceDigest)
	s.WriteString(" Control status:")
	for i, m := range b.ControlMappings {
		if i > 0 {
			s.WriteString(",")
		}
		fmt.Fprintf(&s, " %s %s", m.ControlID, m.ComplianceStatus)
	}
	fmt.Fprintf(&s, ". Review status: %s.", b.ReviewStatus)
	if b.ReviewedBy != "" { // src.Review holds
		// reviewed_by is the reviewer's own word; the key that recorded it is
		// runproof's.
		fmt.Fprintf(&s, " Signed off by %s at %s, on bundle %s of the same %d steps, recorded with API key %s.",
			b.ReviewedBy, b.ReviewedAt, src.Review.BundleID, b.TotalSteps, src.Review.KeyID)
	}
	return s.String()
}

// afterInflection sorts the steps after a run's inflection by when
// runproof received them against the run's stop: those sent in the
// breaking step's own request, recorded at the stop, before the agent
// could learn of it, and those sent later, after it was told to stop (or,
// when the run was not stopped, every one). Of these, steps under way when
// the breaking step began (Step.UnderWayAt: the agent's root span, say)
// are counted apart: they do not show the agent going on. They are told
// from the steps' times, as bundle.json gives them, so that anyone can
// count them again; runproof judged steps by the same rule as they came,
// but for runs recorded before it had the rule.
type afterInflection struct {
	withStop, withMicro   int64 // steps recorded at the stop, and their cost
	underWay, underMicro  int64 // steps recorded after it, under way at the stop, and their cost
	afterStop, afterMicro int64 // steps recorded after it, sent after the stop, and their cost
	firstAfter            int64 // the index of the first of those
}

func (a *afterInflection) add(s runproof.Step, contained *time.Time, violation time.Time) {
	switch {
	case contained != nil && !s.RecordedAt.After(*contained):
		a.withStop++
		a.withMicro += s.CostMicrocents
		return
	case s.UnderWayAt(violation):
		a.underWay++
		a.underMicro += s.CostMicrocents
		return
	}
	if a.afterStop == 0 {
		a.firstAfter = s.Index
	}
	a.afterStop++
	a.afterMicro += s.CostMicrocents
}
