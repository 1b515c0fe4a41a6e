package evidence_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

func debrief(t *testing.T, src evidence.Source) evidence.ExecutiveDebriefBundle {
	t.Helper()
	b, err := evidence.BuildExecutiveDebrief(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	checkPlainText(t, src, b)
	return b
}

var (
	uuidRE       = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	snakeRE      = regexp.MustCompile(`\w+_\w+`)
	stackTraceRE = regexp.MustCompile(`goroutine \d|\.go:\d|panic:`)
)

// checkPlainText: no sentence of a debrief holds an id, a hash, a
// snake_case word or a stack trace.
func checkPlainText(t *testing.T, src evidence.Source, b evidence.ExecutiveDebriefBundle) {
	t.Helper()
	texts := append([]string{b.IncidentSummary, b.BusinessImpact, b.CostPreventedMethod}, b.RecommendedActions...)
	ids := []string{src.Run.ID, src.Run.TraceID, src.Run.TenantID, src.Run.AgentID, src.Snapshot.ID, b.BundleID}
	if src.Incident != nil {
		ids = append(ids, src.Incident.ID, src.Incident.PolicyID)
	}
	for _, s := range texts {
		switch {
		case uuidRE.MatchString(s), strings.Contains(s, "sha256:"), snakeRE.MatchString(s), stackTraceRE.MatchString(s):
			t.Errorf("jargon in %q", s)
		}
		for _, id := range ids {
			if regexp.MustCompile(`(^|\W)` + regexp.QuoteMeta(id) + `(\W|$)`).MatchString(s) { // as a word: "rep" is in no "report"
				t.Errorf("id %q in %q", id, s)
			}
		}
	}
	if n := strings.Count(b.IncidentSummary, ". ") + 1; n < 2 || n > 3 {
		t.Errorf("summary has %d sentences: %q", n, b.IncidentSummary)
	}
	if n := len(b.RecommendedActions); n < 2 || n > 5 {
		t.Errorf("%d recommended actions: %q", n, b.RecommendedActions)
	}
}

func TestDebriefRiskLevels(t *testing.T) {
	costPolicy := func(threshold string) []runproof.Policy {
		return []runproof.Policy{pol("cost cap", runproof.PolicyCostLimit, threshold, runproof.ActionStop)}
	}
	tests := []struct {
		name   string
		src    evidence.Source
		want   runproof.RiskLevel
		action string // one recommended action must start with this
	}{
		{"token limit, 20% over: low", tokenRun(t), runproof.RiskLow, "Find out why the agent used more tokens"},
		{"cost limit, 20% over: medium", costRun(t), runproof.RiskMedium, "Make the agent honour stop decisions"},
		{"cost limit, 60% over: high", simulate(t, runSpec{n: 10, goal: "Draft a reply", policies: costPolicy("100"),
			steps: []stepSpec{{typ: "llm", costMicro: 160 * cent}}}), runproof.RiskHigh, "Lower the limit"},
		{"cost limit, exactly 50% over: high", simulate(t, runSpec{n: 10, goal: "Draft a reply", policies: costPolicy("100"),
			steps: []stepSpec{{typ: "llm", costMicro: 150 * cent}}}), runproof.RiskHigh, "Lower the limit"},
		{"denied step type: high", deniedRun(t), runproof.RiskHigh, "Remove the tool from the agent's permissions"},
		{"cost limit 60% over and $160: critical", simulate(t, runSpec{n: 11, goal: "Reprice the catalogue", policies: costPolicy("10000"),
			steps: []stepSpec{{typ: "llm", costMicro: 5000 * cent}, {typ: "llm", costMicro: 11000 * cent}}}), runproof.RiskCritical, "Review spending approvals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := debrief(t, tt.src)
			if b.RiskLevel != tt.want {
				t.Errorf("risk %s, want %s (%s)", b.RiskLevel, tt.want, b.BusinessImpact)
			}
			if b.RiskLevel != tt.src.Incident.RiskLevel {
				t.Errorf("risk %s, the incident says %s", b.RiskLevel, tt.src.Incident.RiskLevel)
			}
			found := false
			for _, a := range b.RecommendedActions {
				found = found || strings.HasPrefix(a, tt.action)
			}
			if !found {
				t.Errorf("no action %q… in %q", tt.action, b.RecommendedActions)
			}
		})
	}
}

func TestDebriefTimes(t *testing.T) {
	src := costRun(t)
	inc := src.Incident
	detected, contained := inc.ViolationAt.Add(1500*time.Millisecond), inc.ViolationAt.Add(4*time.Second)
	inc.DetectedAt, inc.ContainedAt = detected, &contained
	b := debrief(t, src)
	if b.TimeToDetectSeconds != 1.5 || b.TimeToContainSeconds == nil || *b.TimeToContainSeconds != 2.5 {
		t.Errorf("detect %v contain %v, want 1.5 and 2.5", b.TimeToDetectSeconds, b.TimeToContainSeconds)
	}
	if b.ViolationTime != "2026-03-10T14:00:04.000000Z" || b.DetectionTime != "2026-03-10T14:00:05.500000Z" || b.ContainmentTime != "2026-03-10T14:00:08.000000Z" {
		t.Errorf("times %s %s %s", b.ViolationTime, b.DetectionTime, b.ContainmentTime)
	}
	if !strings.Contains(b.IncidentSummary, "stopped 4 seconds after that step") {
		t.Errorf("summary: %s", b.IncidentSummary)
	}

	// Detected at the very instant, never contained: 0 and no containment.
	inc.DetectedAt, inc.ContainedAt = inc.ViolationAt, nil
	src.Run.Status, src.Run.StoppedAt = runproof.RunRunning, nil
	b = debrief(t, src)
	if b.TimeToDetectSeconds != 0 || b.TimeToContainSeconds != nil || b.ContainmentTime != "" {
		t.Errorf("detect %v contain %v containment %q", b.TimeToDetectSeconds, b.TimeToContainSeconds, b.ContainmentTime)
	}
	if !strings.Contains(b.IncidentSummary, "not stopped") || !strings.HasPrefix(b.RecommendedActions[0], "Make sure runs that break a rule are stopped") {
		t.Errorf("summary %q actions %q", b.IncidentSummary, b.RecommendedActions)
	}

	// An agent clock ahead of runproof's gives 0, not a negative time.
	inc.DetectedAt = inc.ViolationAt.Add(-time.Second)
	if b = debrief(t, src); b.TimeToDetectSeconds != 0 {
		t.Errorf("detect %v, want 0", b.TimeToDetectSeconds)
	}
}

func TestDebriefCosts(t *testing.T) {
	tests := []struct {
		name      string
		src       evidence.Source
		incurred  int64
		prevented int64 // -1: no estimate
		method    string
		shown     string // the estimate in the PDF, when given
	}{
		// 4 steps of 30 cents up to the stop, 2 more after it; median 12 →
		// 6 × 30 cents: the steps taken after the stop were not avoided.
		{"cost", costRun(t), 120, 180, "Estimate: the average cost per step up to the stop ($0.30) times the 6 further steps " +
			"this agent's runs usually take beyond this point (their median length is 12 steps, over 5 earlier runs that ended " +
			"without an incident; this run took 6 steps, 4 of them up to the stop).", "$1.80"},
		// Lengths 8, 10, 12 and 30: the median is 11, half way between the
		// middle two; 11 − 6 = 5 × 30 cents.
		{"median of an even number of runs", withHistory(costRun(t), 4, 22), 120, 150, "Estimate: the average cost per step up to the stop ($0.30) times the 5 further steps " +
			"this agent's runs usually take beyond this point (their median length is 11 steps, over 4 earlier runs", ""},
		// Lengths 8, 9, 10 and 30: 9.5 − 6 = 3.5 × 30 cents.
		{"median half way between two lengths", withHistory(costRun(t), 4, 19), 120, 105, "Estimate: the average cost per step up to the stop ($0.30) times the 3.5 further steps " +
			"this agent's runs usually take beyond this point (their median length is 9.5 steps, over 4 earlier runs", ""},
		{"token: two earlier runs only", tokenRun(t), 18, -1, "No estimate: fewer than three earlier runs", ""},
		{"not stopped", notStopped(t), 120, -1, "No estimate: the run was not stopped", ""},
		// 1.234567 + 0 + 0.00001 cents → 1; median 3 = steps up to the stop.
		{"denied: usual length reached", deniedRun(t), 1, 0, "Estimate: nothing avoided", "$0.00"},
		// 6 steps taken against a usual 4 (a loop, say): not "nothing
		// avoided", which would say the stop saved nothing.
		{"past the usual length", withHistory(costRun(t), 5, 8), 120, -1, "No estimate: this run had gone past the usual length " +
			"of this agent's runs (their median length is 4 steps, over 5 earlier runs that ended without an incident; " +
			"this run took 6 steps, 4 of them up to the stop), so that length does not tell how much further it would have gone.", ""},
		// Steps of 0.61 cents: to the cent, "$0.01 times 2 steps" would
		// make $0.01; to a hundredth of a cent it adds up.
		{"an average under a cent", withHistory(simulate(t, runSpec{n: 1,
			policies: []runproof.Policy{pol("cap", runproof.PolicyCostLimit, "1.5", runproof.ActionStop)},
			steps:    same(3, stepSpec{typ: "llm:gpt-4o", costMicro: cent * 61 / 100}), detect: time.Second}), 5, 10), 2, 1,
			"Estimate: the average cost per step up to the stop (about $0.0061) times the 2 further steps", "$0.01"},
		// Steps of 0.15 cents: 0.45 cents up to the stop and 0.3 avoided,
		// each less than a cent, not $0.00.
		{"amounts under half a cent", withHistory(simulate(t, runSpec{n: 1,
			policies: []runproof.Policy{pol("cap", runproof.PolicyCostLimit, "0.4", runproof.ActionStop)},
			steps:    same(3, stepSpec{typ: "llm:gpt-4o", costMicro: cent * 15 / 100}), detect: time.Second}), 5, 10), 0, 0,
			"Estimate: the average cost per step up to the stop (about $0.0015) times the 2 further steps", "less than $0.01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := debrief(t, tt.src)
			if b.CostIncurredCents != tt.incurred {
				t.Errorf("incurred %d, want %d", b.CostIncurredCents, tt.incurred)
			}
			switch {
			case tt.prevented < 0 && b.CostPreventedCents != nil:
				t.Errorf("prevented %d, want none", *b.CostPreventedCents)
			case tt.prevented >= 0 && (b.CostPreventedCents == nil || *b.CostPreventedCents != tt.prevented):
				t.Errorf("prevented %v, want %d", b.CostPreventedCents, tt.prevented)
			}
			if !strings.HasPrefix(b.CostPreventedMethod, tt.method) {
				t.Errorf("method %q", b.CostPreventedMethod)
			}
			if tt.shown != "" && b.CostPrevented() != tt.shown {
				t.Errorf("estimate shown as %q, want %q", b.CostPrevented(), tt.shown)
			}
			if tt.incurred == 0 && b.CostIncurred() != "less than $0.01" {
				t.Errorf("cost incurred shown as %q", b.CostIncurred())
			}
		})
	}
}

func TestDebriefText(t *testing.T) {
	b := debrief(t, costRun(t))
	want := "While working on “Summarise the quarterly sales report for the board”, the agent went over its spending limit at its 4th step: " +
		"it reached $1.20 against a limit of $1.00, 20% over. It was stopped 0.2 seconds after that step. " +
		"The agent then sent 2 more steps even though it had been told to stop."
	if b.IncidentSummary != want {
		t.Errorf("summary\n got %s\nwant %s", b.IncidentSummary, want)
	}
	if !strings.Contains(b.BusinessImpact, "cost a further $0.60") {
		t.Errorf("impact: %s", b.BusinessImpact)
	}

	// A step begun before the breaking one (the agent's root span, say)
	// that came after the stop was under way: it is not going on.
	spec := costSpec()
	spec.steps = append(spec.steps, stepSpec{typ: "invoke_agent", costMicro: cent, atMicroOff: -7_000_000, durMicro: 10_000_000})
	src := simulate(t, spec)
	// Recorded by a runproof that judged it sent after the stop (an
	// after_stop finding), the step is told by its times all the same, as
	// the PDF and anyone holding bundle.json tell it.
	var judgedBefore []runproof.Step
	for s, err := range src.Steps {
		if err != nil {
			t.Fatal(err)
		}
		if s.Index == 6 {
			s.Status, s.Findings = runproof.StepViolation, []runproof.Finding{{Outcome: runproof.OutcomeAfterStop}}
		}
		judgedBefore = append(judgedBefore, s)
	}
	for _, src := range []evidence.Source{src, func() evidence.Source { src.Steps = evidence.StepsOf(judgedBefore); return src }()} {
		b = debrief(t, src)
		if !strings.HasSuffix(b.IncidentSummary, " The agent then sent 2 more steps even though it had been told to stop.") {
			t.Errorf("summary with a step under way at the stop:\n%s", b.IncidentSummary)
		}
		if !strings.Contains(b.BusinessImpact, "The steps that were under way beside it cost a further $0.01. "+
			"The steps it sent after being told to stop cost a further $0.60.") {
			t.Errorf("impact with a step under way at the stop: %s", b.BusinessImpact)
		}
	}
	// Sent in the breaking step's own request, it came with the others.
	spec.oneRequest = true
	if b := debrief(t, simulate(t, spec)); !strings.Contains(b.IncidentSummary, "3 more steps came in the same request") ||
		strings.Contains(b.BusinessImpact, "under way") {
		t.Errorf("a step under way sent with the breaking one: %s / %s", b.IncidentSummary, b.BusinessImpact)
	}
	soc2, err := evidence.BuildSOC2(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if m := soc2.ControlMappings[0]; !strings.Contains(m.EvidenceProvided, "sent 2 more steps after it was told to stop") {
		t.Errorf("%s: %s", m.ControlID, m.EvidenceProvided)
	}

	// A goal that names ids is not quoted.
	src = costRun(t)
	src.Run.Goal = "Retry run " + src.Run.ID + " with input_file"
	if b := debrief(t, src); !strings.HasPrefix(b.IncidentSummary, "While working on its task,") {
		t.Errorf("summary: %s", b.IncidentSummary)
	}
	// One that holds an id only within a longer word, or the joiners of an
	// emoji, is.
	for _, goal := range []string{"Write a report for the supporters", "Écrire 👩\u200d💻 un résumé"} {
		src = costRun(t)
		src.Run.TenantID, src.Run.AgentID, src.Run.Goal = "rep", "support", goal
		if b := debrief(t, src); !strings.HasPrefix(b.IncidentSummary, "While working on “"+goal+"”,") {
			t.Errorf("goal %q: summary %s", goal, b.IncidentSummary)
		}
	}
}

// TestDebriefJustOver: an actual value that rounds to its limit, or a
// limit finer than a cent, is written to its last digit, so that the
// summary shows the breach.
func TestDebriefJustOver(t *testing.T) {
	for _, c := range []struct {
		policy runproof.Policy
		step   stepSpec
		want   string
	}{
		{pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop),
			stepSpec{typ: "llm:gpt-4o", costMicro: 50_025_000}, "it reached $1.0005 against a limit of $1.00, just over."},
		{pol("tiny cap", runproof.PolicyCostLimit, "0.3", runproof.ActionStop),
			stepSpec{typ: "llm:gpt-4o", costMicro: 250_000}, "it reached $0.005 against a limit of $0.003, 67% over."},
		{pol("time cap", runproof.PolicyDurationLimit, "1000", runproof.ActionStop),
			stepSpec{typ: "llm:gpt-4o", durMicro: 500_200}, "it reached 1.0004 seconds against a limit of 1 second, just over."},
		// A limit finer than the rounding: the actual value to as many digits, not to its last.
		{pol("fine time cap", runproof.PolicyDurationLimit, "90000.5", runproof.ActionStop),
			stepSpec{typ: "llm:gpt-4o", durMicro: 61_728_520}, "it reached 123.457 seconds against a limit of 90.0005 seconds, 37% over."},
	} {
		b := debrief(t, simulate(t, runSpec{n: 1, goal: "Summarise the quarterly sales report for the board",
			policies: []runproof.Policy{c.policy}, steps: same(3, c.step), detect: 200 * time.Millisecond}))
		if !strings.Contains(b.IncidentSummary, c.want) {
			t.Errorf("%s: summary %q, want it to say %q", c.policy.Type, b.IncidentSummary, c.want)
		}
	}
}

// TestDebriefCostsAddUp: the cost up to the breach and after it are
// written so that they add up to the run's cost in cents, each part
// rounded as the running total is.
func TestDebriefCostsAddUp(t *testing.T) {
	for _, c := range []struct {
		n         int
		costMicro int64
		want      string
		tile      string // the figure the PDF shows
	}{
		// Two steps of half a cent: a cent in all, not $0.01 and a further $0.01.
		{2, cent / 2, "The run cost $0.01 up to and including the step that broke the rule. " +
			"The steps it sent after being told to stop cost less than a cent more.", "$0.01"},
		// Two of 0.22 cents: less than a cent, not $0.00.
		{2, cent * 22 / 100, "The run cost less than $0.01 up to and including the step that broke the rule.", "less than $0.01"},
		// Four of 0.6 cents: 2.4 cents, $0.01 and then a further $0.01
		// (1.8 cents, but the total is $0.02).
		{4, cent * 6 / 10, "The run cost $0.01 up to and including the step that broke the rule. " +
			"The steps it sent after being told to stop cost a further $0.01.", "$0.01"},
	} {
		b := debrief(t, simulate(t, runSpec{n: 1, goal: "Summarise",
			policies: []runproof.Policy{pol("cap", runproof.PolicyCostLimit, "0.4", runproof.ActionStop)},
			steps:    same(c.n, stepSpec{typ: "llm:gpt-4o", costMicro: c.costMicro}), detect: 200 * time.Millisecond}))
		if !strings.HasPrefix(b.BusinessImpact, c.want) {
			t.Errorf("%d steps: impact\n%q\nwant it to begin\n%q", c.n, b.BusinessImpact, c.want)
		}
		if got := b.CostIncurred(); got != c.tile {
			t.Errorf("%d steps of %d: cost incurred %q, want %q", c.n, c.costMicro, got, c.tile)
		}
	}
}

// TestDebriefSameRequest: steps that came in the request of the step that
// broke the rule were sent before the agent could learn of the stop; they
// are not said to be sent after it.
func TestDebriefSameRequest(t *testing.T) {
	b := debrief(t, simulate(t, runSpec{n: 1, goal: "Summarise the quarterly sales report for the board",
		policies:   []runproof.Policy{pol("cost cap", runproof.PolicyCostLimit, "100", runproof.ActionStop)},
		steps:      same(6, stepSpec{typ: "llm:gpt-4o", in: 400, out: 150, costMicro: 30 * cent, durMicro: 1_250_500}),
		detect:     200 * time.Millisecond,
		oneRequest: true,
	}))
	want := "It was stopped 0.2 seconds after that step. " +
		"2 more steps came in the same request as that step, before the agent could learn of the stop."
	if !strings.HasSuffix(b.IncidentSummary, want) {
		t.Errorf("summary\n got %s\nwant …%s", b.IncidentSummary, want)
	}
	if !strings.Contains(b.BusinessImpact, "The steps sent in the same request cost a further $0.60.") ||
		strings.Contains(b.BusinessImpact, "told to stop") {
		t.Errorf("impact: %s", b.BusinessImpact)
	}
	actions := strings.Join(b.RecommendedActions, "\n")
	if !strings.Contains(actions, "in smaller batches: 2 more steps came in the same request") || strings.Contains(actions, "honour") {
		t.Errorf("actions:\n%s", actions)
	}
}

func TestDebriefNeedsIncident(t *testing.T) {
	_, err := evidence.BuildExecutiveDebrief(cleanRun(t), goldenOptions())
	if runproof.ErrorCode(err) != runproof.EINVALID || !strings.Contains(err.Error(), "export an evidence bundle instead") {
		t.Errorf("error %v", err)
	}
	opts := goldenOptions()
	opts.Classification = "SECRET"
	if _, err := evidence.BuildExecutiveDebrief(costRun(t), opts); runproof.ErrorCode(err) != runproof.EINVALID {
		t.Errorf("classification SECRET: %v", err)
	}
}

func TestSOC2Statuses(t *testing.T) {
	const D, P, N = evidence.StatusDemonstrated, evidence.StatusPartial, evidence.StatusNotApplicable
	notContained := notStopped(t)
	spec := costSpec()
	spec.oneRequest = true // the steps after the inflection came with it
	oneRequest := simulate(t, spec)
	tests := []struct {
		name     string
		src      evidence.Source
		rawSteps bool
		want     [3]string
		evidence string // in CC7.2's evidence_provided
	}{
		{"contained, full trace, remediation pending", oneRequest, true, [3]string{D, D, P},
			`Policy "cost cap": cost limit of 100 cents exceeded at step 3 (120 cents); detected 0.2 s after the violation and run stopped 0 s after detection.`},
		{"steps sent after the stop", costRun(t), true, [3]string{P, D, P},
			`Policy "cost cap": cost limit of 100 cents exceeded at step 3 (120 cents); detected 0.2 s after the violation and run stopped 0 s after detection, ` +
				`but the agent sent 2 more steps after it was told to stop, from step 4 on (recorded_at after containment_timestamp).`},
		{"remediation in progress", tokenRun(t), true, [3]string{D, D, P}, "token limit of 10000 tokens exceeded at step 3 (12000 tokens)"},
		{"remediation completed", deniedRun(t), true, [3]string{D, D, D}, `denied step type "shell:exec" used at step 2`},
		{"steps omitted", tokenRun(t), false, [3]string{D, P, P}, "detected 0.035 s after the violation"},
		{"not contained", notContained, true, [3]string{P, D, P}, "no containment is recorded"},
		{"no incident", cleanRun(t), true, [3]string{N, N, N}, "No stop policy was breached"},
	}
	noted := deniedRun(t)
	noted.Incident.RemediationNotes = "Shell access removed from the agent's tools."
	tests = append(tests, struct {
		name     string
		src      evidence.Source
		rawSteps bool
		want     [3]string
		evidence string
	}{"remediation completed, with notes", noted, true, [3]string{D, D, D}, `denied step type "shell:exec" used at step 2`})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := goldenOptions()
			opts.IncludeRawSteps = tt.rawSteps
			b, err := evidence.BuildSOC2(tt.src, opts)
			if err != nil {
				t.Fatal(err)
			}
			var got [3]string
			for i, m := range b.ControlMappings {
				got[i] = m.ComplianceStatus
			}
			if got != tt.want {
				t.Errorf("statuses %v, want %v: %+v", got, tt.want, b.ControlMappings)
			}
			if !strings.Contains(b.ControlMappings[0].EvidenceProvided, tt.evidence) {
				t.Errorf("CC7.2 evidence %q, want %q", b.ControlMappings[0].EvidenceProvided, tt.evidence)
			}
			// CC7.4's evidence says whether notes record what was done, and
			// the bundle carries them.
			if inc := tt.src.Incident; inc != nil && inc.RemediationStatus == runproof.RemediationCompleted {
				want := "but no notes record what was done"
				if inc.RemediationNotes != "" {
					want = "what was done is in remediation_notes"
				}
				if !strings.Contains(b.ControlMappings[2].EvidenceProvided, want) || b.RemediationNotes != inc.RemediationNotes {
					t.Errorf("CC7.4 evidence %q, notes %q", b.ControlMappings[2].EvidenceProvided, b.RemediationNotes)
				}
			}
			if b.ReviewStatus != evidence.ReviewPending || strings.Join(b.CriteriaCovered, ",") != "CC7.2,CC7.3,CC7.4" {
				t.Errorf("review %s criteria %v", b.ReviewStatus, b.CriteriaCovered)
			}
			if tt.src.Incident != nil && (b.CompliancePeriodStart != "2026-03-10T00:00:00.000000Z" || b.CompliancePeriodEnd != "2026-03-11T00:00:00.000000Z") {
				t.Errorf("period %s – %s", b.CompliancePeriodStart, b.CompliancePeriodEnd)
			}
		})
	}
}

// withHistory gives src a history of runs earlier runs whose median
// length is twiceMedian / 2 steps.
func withHistory(src evidence.Source, runs int, twiceMedian int64) evidence.Source {
	src.History = evidence.AgentHistory{CompletedRuns: runs, TwiceMedianSteps: twiceMedian}
	return src
}

// TestDebriefAgentClockAhead: a step dated after runproof detected it (an
// agent clock ahead) makes the delays zero, and the summary says why.
func TestDebriefAgentClockAhead(t *testing.T) {
	src := costRun(t)
	src.Incident.ViolationAt = src.Incident.DetectedAt.Add(4 * time.Minute)
	b := debrief(t, src)
	if b.TimeToDetectSeconds != 0 || !strings.Contains(b.IncidentSummary, "It was stopped immediately "+
		"(the agent's clock runs 4 minutes ahead of runproof's, so that delay shows as zero).") {
		t.Errorf("time to detect %v, summary %q", b.TimeToDetectSeconds, b.IncidentSummary)
	}
	// So does the SOC 2 bundle's evidence of detection.
	soc2, err := evidence.BuildSOC2(src, goldenOptions())
	if err != nil {
		t.Fatal(err)
	}
	if cc72 := soc2.ControlMappings[0].EvidenceProvided; !strings.Contains(cc72,
		"detected 0 s after the violation (the violation's time is the agent's clock, 240 s ahead of runproof's) and run stopped") {
		t.Errorf("CC7.2: %q", cc72)
	}
	// Stopped 5 seconds after its detection, 2 seconds ahead: 3 seconds.
	src = costRun(t)
	src.Incident.ViolationAt = src.Incident.DetectedAt.Add(2 * time.Second)
	stop := src.Incident.DetectedAt.Add(5 * time.Second)
	src.Incident.ContainedAt, src.Run.StoppedAt = &stop, &stop
	if b := debrief(t, src); !strings.Contains(b.IncidentSummary, "It was stopped 3 seconds after that step "+
		"(the agent's clock runs 2 seconds ahead of runproof's, so that delay shows shorter than it was).") {
		t.Errorf("summary %q", b.IncidentSummary)
	}
	if b := debrief(t, costRun(t)); strings.Contains(b.IncidentSummary, "clock") {
		t.Errorf("clocks agreeing are mentioned: %q", b.IncidentSummary)
	}
}

// notStopped is the cost run as if it had not been stopped.
func notStopped(t *testing.T) evidence.Source {
	src := costRun(t)
	src.Incident.ContainedAt, src.Run.Status, src.Run.StoppedAt = nil, runproof.RunCompleted, nil
	return src
}

// TestDebriefStepArrivedLate: a step that reached runproof hours after its
// own time (a run loaded after the fact, or an agent clock behind) keeps
// its delay, and the summary says whose it is; one a minute late does not.
func TestDebriefStepArrivedLate(t *testing.T) {
	src := costRun(t)
	src.Incident.ViolationAt = src.Incident.DetectedAt.Add(-8 * time.Hour)
	b := debrief(t, src)
	if b.TimeToDetectSeconds != 8*3600 || !strings.Contains(b.IncidentSummary, "It was stopped 8 hours after that step "+
		"(the step reached runproof 8 hours after its end by the time and duration the agent gave it: the agent sent it late, or its clock runs behind runproof's).") {
		t.Errorf("time to detect %v, summary %q", b.TimeToDetectSeconds, b.IncidentSummary)
	}
	src = costRun(t)
	src.Incident.ViolationAt = src.Incident.DetectedAt.Add(-time.Minute)
	if b := debrief(t, src); strings.Contains(b.IncidentSummary, "reached runproof") {
		t.Errorf("a step a minute late is called late: %q", b.IncidentSummary)
	}
	// A step of ten minutes sent as it ended is not late: the delay after
	// its end is said with the delay after its start.
	spec := costSpec()
	for i := range spec.steps {
		spec.steps[i].durMicro = 10 * 60 * 1e6
	}
	spec.detect = 10*time.Minute + 200*time.Millisecond
	b = debrief(t, simulate(t, spec))
	if strings.Contains(b.IncidentSummary, "reached runproof") || !strings.Contains(b.IncidentSummary,
		"It was stopped 10 minutes after that step began, 0.2 seconds after it ended.") {
		t.Errorf("a ten-minute step: %q", b.IncidentSummary)
	}
}

// TestSOC2OfARunningRun: the attestation of a run still running says so,
// and that it covers the steps up to then.
func TestSOC2OfARunningRun(t *testing.T) {
	src := cleanRun(t)
	src.Run.Status, src.Run.CompletedAt = runproof.RunRunning, nil
	opts := goldenOptions()
	start := src.Run.StartedAt
	opts.PeriodStart = &start
	b, err := evidence.BuildSOC2(src, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := "The run was still running when the bundle was made: it covers its 3 steps up to then."; !strings.Contains(b.AttestationStatement, want) {
		t.Errorf("attestation %q lacks %q", b.AttestationStatement, want)
	}
}
