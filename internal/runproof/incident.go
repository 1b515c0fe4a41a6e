package runproof

import "strconv"

// CheckInflection checks an incident against its inflection step as
// stored: the step's stop finding for the incident's policy, its
// timestamp and the time runproof recorded it are what the incident was
// opened from (its policy, threshold and actual value; its violation,
// detection and containment times). Steps are sealed in the ledger and
// incidents are not, so an incident edited behind runproof's back shows
// here, before a bundle signs it. The error (ECONFLICT) names the first
// field that disagrees. A zero st stands for an inflection step not found.
// run is the incident's run: one that ended unstopped had its breach come
// late, after its end, and nothing contained it.
func (inc Incident) CheckInflection(st Step, run Run) error {
	fail := func(field, incident, step string) error {
		return Errorf(ECONFLICT, "incident %s disagrees with its inflection step %d, which the ledger seals: its %s is %q, the step's %q:"+
			" the incident record was changed behind runproof's back",
			inc.ID, inc.InflectionStepIndex, field, incident, step)
	}
	if st.Index != inc.InflectionStepIndex || !st.IsInflection {
		return Errorf(ECONFLICT, "incident %s names step %d of its run as its inflection, which that step is not:"+
			" the incident record was changed behind runproof's back", inc.ID, inc.InflectionStepIndex)
	}
	var f *Finding
	for i := range st.Findings {
		if g := &st.Findings[i]; g.PolicyID == inc.PolicyID && g.Action == ActionStop && g.Outcome == OutcomeExceeded {
			f = g
			break
		}
	}
	if f == nil {
		return Errorf(ECONFLICT, "incident %s names policy %s, which its inflection step %d did not find breached:"+
			" the incident record was changed behind runproof's back", inc.ID, inc.PolicyID, inc.InflectionStepIndex)
	}
	for _, c := range []struct{ field, incident, step string }{
		{"policy_version", strconv.Itoa(inc.PolicyVersion), strconv.Itoa(f.PolicyVersion)},
		{"policy_name", inc.PolicyName, f.PolicyName},
		{"violation_type", string(inc.ViolationType), string(f.Type)},
		{"threshold_value", inc.ThresholdValue, f.Threshold},
		{"actual_value", inc.ActualValue, f.Actual},
		{"violation_time", FormatTime(inc.ViolationAt), FormatTime(st.Timestamp)},
		{"detection_time", FormatTime(inc.DetectedAt), FormatTime(st.RecordedAt)},
	} {
		if c.incident != c.step {
			return fail(c.field, c.incident, c.step)
		}
	}
	lateBreach := run.CompletedAt != nil && run.StoppedAt == nil
	switch { // runproof stops the run as it detects the breach, unless it had ended
	case inc.ContainedAt == nil && lateBreach:
	case inc.ContainedAt == nil:
		return fail("containment_time", "none", FormatTime(st.RecordedAt))
	case !inc.ContainedAt.Equal(inc.DetectedAt):
		return fail("containment_time", FormatTime(*inc.ContainedAt), FormatTime(st.RecordedAt))
	}
	return nil
}
