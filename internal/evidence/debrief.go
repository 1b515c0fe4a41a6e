package evidence

import (
	"cmp"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/runproof/runproof/internal/policy"
	"github.com/runproof/runproof/internal/runproof"
)

// BuildExecutiveDebrief builds and seals the executive debrief of a run's
// incident. Its id is "EXEC-" + opts.BundleID. A run without an incident
// has no debrief (EINVALID).
//
// Its text is made of plain sentences built from the facts: no ids, field
// names, hashes or stack traces, and every figure can be derived from the
// evidence bundle of the same incident — except in cost_prevented_method,
// which names the history figures the estimate rests on.
//
// risk_level is policy.Grading of the incident, with the run's cost up to
// the stop (docs/policies.md has the table); business_impact gives its
// reasons.
//
// Money: cost_incurred_cents and cost_prevented_cents are whole cents,
// rounded half up from the exact micro-cent sums.
func BuildExecutiveDebrief(src Source, opts Options) (ExecutiveDebriefBundle, error) {
	inc := src.Incident
	if inc == nil {
		return ExecutiveDebriefBundle{}, runproof.Errorf(runproof.EINVALID,
			"run %q has no incident: an executive debrief describes an incident; export an evidence bundle instead", src.Run.ID)
	}
	if err := check(src, opts); err != nil {
		return ExecutiveDebriefBundle{}, err
	}
	class := cmp.Or(opts.Classification, ClassConfidential)
	switch class {
	case ClassInternal, ClassConfidential, ClassPublic:
	default:
		return ExecutiveDebriefBundle{}, runproof.Errorf(runproof.EINVALID, "classification must be INTERNAL, CONFIDENTIAL or PUBLIC, not %q", class)
	}

	f, err := facts(src, opts)
	if err != nil {
		return ExecutiveDebriefBundle{}, err
	}
	b := ExecutiveDebriefBundle{
		SchemaVersion: SchemaVersion, BundleID: PrefixExecutiveDebrief + opts.BundleID,
		BundleType: runproof.BundleExecutiveDebrief, CreatedAt: runproof.FormatTime(opts.CreatedAt),
		RunID: src.Run.ID, IncidentID: inc.ID, TenantID: src.Run.TenantID, PolicyViolated: inc.PolicyName,
		ViolationTime: runproof.FormatTime(inc.ViolationAt), DetectionTime: runproof.FormatTime(inc.DetectedAt),
		ContainmentTime:     optTime(f.contained),
		RiskLevel:           f.grade.Level,
		RemediationStatus:   inc.RemediationStatus,
		RemediationNotes:    inc.RemediationNotes,
		TimeToDetectSeconds: seconds(inc.ViolationAt, inc.DetectedAt),
		CostIncurredCents:   roundCents(f.costMicro),
		PreparedFor:         opts.PreparedFor, PreparedBy: cmp.Or(opts.PreparedBy, "system"), Classification: class,
	}
	if f.contained != nil {
		s := seconds(inc.DetectedAt, *f.contained)
		b.TimeToContainSeconds = &s
	}
	b.IncidentSummary = summary(f)
	b.BusinessImpact = impact(f)
	b.RecommendedActions = actions(f)
	var some bool // an estimate of more than nothing
	b.CostPreventedCents, some, b.CostPreventedMethod = prevented(f, src.History)
	b.incurredUnderCent = b.CostIncurredCents == 0 && f.costMicro > 0
	b.preventedUnderCent = some && *b.CostPreventedCents == 0
	return b, b.SetContentHash()
}

// CostIncurred writes the cost incurred in dollars as the sentences do:
// "less than $0.01" for some under half a cent.
func (b *ExecutiveDebriefBundle) CostIncurred() string {
	if b.incurredUnderCent {
		return underACent
	}
	return dollars(b.CostIncurredCents * runproof.MicrocentsPerCent)
}

// CostPrevented writes the estimate of the cost prevented in dollars, as
// CostIncurred, or "" when there is none.
func (b *ExecutiveDebriefBundle) CostPrevented() string {
	switch {
	case b.CostPreventedCents == nil:
		return ""
	case b.preventedUnderCent:
		return underACent
	}
	return dollars(*b.CostPreventedCents * runproof.MicrocentsPerCent)
}

// incidentFacts are the figures the debrief's sentences are made of, all
// taken from the run, its steps and the incident.
type incidentFacts struct {
	inc               *runproof.Incident
	contained         *time.Time
	endedFirst        bool    // the run ended, unstopped, before the breach reached runproof (a late step)
	ran               float64 // seconds the breaking step took, as the agent reported it
	task              string  // the goal in quotes, or "its task"
	upTo              int64   // steps up to and including the inflection
	costMicro         int64   // cost of those steps
	afterInflection           // the steps after them
	threshold, actual int64   // limits: in the type's fixed-point unit
	grade             policy.Grade
}

func facts(src Source, opts Options) (incidentFacts, error) {
	inc := src.Incident
	f := incidentFacts{inc: inc, contained: containedAt(src), task: "its task", upTo: inc.InflectionStepIndex + 1}
	f.endedFirst = f.contained == nil && src.Run.CompletedAt != nil && !src.Run.CompletedAt.After(inc.DetectedAt)
	ids := []string{src.Run.ID, inc.ID, src.Run.TenantID, src.Run.TraceID, src.Run.AgentID, src.Snapshot.ID}
	if plain(src.Run.Goal, ids) {
		f.task = "“" + src.Run.Goal + "”"
	}
	_, _, err := scan(src, func(s runproof.Step) error {
		if opts.IncludeRawSteps && opts.OnStep != nil {
			if err := opts.OnStep(stepEvidence(s, false)); err != nil {
				return err
			}
		}
		if s.Index == inc.InflectionStepIndex {
			f.ran = float64(s.DurationMicros) / 1e6
		}
		if s.Index <= inc.InflectionStepIndex {
			f.costMicro += s.CostMicrocents
		} else {
			f.add(s, f.contained, inc.ViolationAt)
		}
		return nil
	})
	if err != nil {
		return f, err
	}
	f.threshold, f.actual = policy.FixedValues(runproof.Finding{Type: inc.ViolationType, Threshold: inc.ThresholdValue, Actual: inc.ActualValue})
	f.grade = policy.Grading(policy.RiskInput{Type: inc.ViolationType, Threshold: f.threshold, Actual: f.actual, CostMicrocents: f.costMicro})
	return f, nil
}

// typeAction is what to do about a breach of each policy type.
var typeAction = map[runproof.PolicyType]string{
	runproof.PolicyCostLimit:      "Find out why this task cost more than its spending limit before letting the agent run it again.",
	runproof.PolicyTokenLimit:     "Find out why the agent used more tokens than budgeted, for example very long prompts or repeated calls.",
	runproof.PolicyStepLimit:      "Check the agent for loops or repeated work: it needed more steps than allowed.",
	runproof.PolicyDurationLimit:  "Check what made the agent run longer than allowed, such as slow tools or waiting on outside services.",
	runproof.PolicyStepTypeDenied: "Remove the tool from the agent's permissions so that it cannot attempt the forbidden action again.",
	runproof.PolicyExpression:     "Review the broken custom rule with its owner and find out what in the agent's behaviour triggered it.",
}

// limitWords names what was broken, for people.
var limitWords = map[runproof.PolicyType]string{
	runproof.PolicyCostLimit:      "its spending limit",
	runproof.PolicyTokenLimit:     "its token budget",
	runproof.PolicyStepLimit:      "its step limit",
	runproof.PolicyDurationLimit:  "its time limit",
	runproof.PolicyStepTypeDenied: "a forbidden action",
	runproof.PolicyExpression:     "a custom rule",
}

func summary(f incidentFacts) string {
	inc := f.inc
	at := "at its " + ordinal(f.upTo) + " step"
	var first string
	switch {
	case inc.ViolationType == runproof.PolicyStepTypeDenied:
		first = fmt.Sprintf("While working on %s, the agent attempted %s %s", f.task, limitWords[inc.ViolationType], at)
		if plain(inc.ActualValue, nil) {
			first += fmt.Sprintf(": it tried to use “%s”, which it is not allowed to use", inc.ActualValue)
		}
		first += "."
	case inc.ViolationType.IsLimit():
		limit := "a limit"
		if inc.ViolationType == runproof.PolicyTokenLimit {
			limit = "a budget"
		}
		actual, threshold := amount(inc.ViolationType, f.actual), amount(inc.ViolationType, f.threshold)
		// Written finer when rounded alike, so that the breach shows, and
		// when the limit is finer than the rounding ($0.003 is not $0.00):
		// the limit to its last digit, the actual value to as many digits
		// (to its own last digit when those do not show it over).
		if exact := exactAmount(inc.ViolationType, f.threshold); actual == threshold || threshold != exact {
			threshold = exact
			scale := unitScale(inc.ViolationType)
			shown := roundTo(f.actual, scale, decimals(f.threshold, scale))
			if shown <= f.threshold {
				shown = f.actual
			}
			actual = exactAmount(inc.ViolationType, shown)
		}
		first = fmt.Sprintf("While working on %s, the agent went over %s %s: it reached %s against %s of %s",
			f.task, limitWords[inc.ViolationType], at, actual, limit, threshold)
		switch pct := percentOver(f.actual, f.threshold); {
		case f.threshold == 0:
		case pct == 0:
			first += ", just over"
		default:
			first += fmt.Sprintf(", %s%% over", Group(pct))
		}
		first += "."
	default:
		first = fmt.Sprintf("While working on %s, the agent broke %s %s.", f.task, cmp.Or(limitWords[inc.ViolationType], "a rule"), at)
	}

	var second string
	var delay float64 // the one the sentence gives
	if f.contained != nil {
		delay = seconds(inc.ViolationAt, *f.contained)
		second = "it was stopped " + f.after(delay)
	} else {
		delay = seconds(inc.ViolationAt, inc.DetectedAt)
		second = "the breach was detected " + f.after(delay) + ", but the run was not stopped"
		if f.endedFirst {
			second = "the breach was detected " + f.after(delay) + ", when the run had already ended: that step reached runproof after the run's end"
		}
	}
	if ahead := seconds(inc.DetectedAt, inc.ViolationAt); ahead >= 1 {
		// The step's time is the agent's clock, the detection runproof's.
		shown := "shorter than it was"
		if delay == 0 {
			shown = "as zero"
		}
		second += fmt.Sprintf(" (the agent's clock runs %s ahead of runproof's, so that delay shows %s)", Duration(ahead), shown)
	} else if late := seconds(inc.ViolationAt, inc.DetectedAt) - f.ran; late >= lateStep.Seconds() {
		// runproof judges a step as it arrives: a step that arrived this
		// long after its own time was sent late, or the agent's clock runs
		// behind runproof's.
		gave := "the time the agent gave it"
		if f.ran > 0 {
			gave = "its end by the time and duration the agent gave it"
		}
		second += fmt.Sprintf(" (the step reached runproof %s after %s: the agent sent it late, "+
			"or its clock runs behind runproof's)", Duration(late), gave)
	}
	if inc.ViolationType == runproof.PolicyCostLimit {
		second = upperFirst(second) + "."
	} else {
		second = fmt.Sprintf("By then the run had cost %s, and %s.", dollars(f.costMicro), second)
	}
	s := first + " " + second
	if f.withStop > 0 {
		s += fmt.Sprintf(" %s came in the same request as that step, before the agent could learn of the stop.",
			upperFirst(count(f.withStop, "more step", "more steps")))
	}
	switch {
	case f.afterStop > 0 && f.contained != nil:
		s += fmt.Sprintf(" The agent then sent %s even though it had been told to stop.", count(f.afterStop, "more step", "more steps"))
	case f.afterStop > 0:
		s += fmt.Sprintf(" The run went on for %s after the breach.", count(f.afterStop, "more step", "more steps"))
	}
	return s
}

func impact(f incidentFacts) string {
	s := fmt.Sprintf("The run cost %s up to and including the step that broke the rule.", dollars(f.costMicro))
	// Each part rounded as the running total is, so that the parts add up
	// to the run's cost in cents.
	withStop := f.costMicro + f.withMicro
	if f.withMicro > 0 {
		s += fmt.Sprintf(" The steps sent in the same request cost %s.", further(f.costMicro, withStop))
	}
	underWay := withStop + f.underMicro
	if f.underMicro > 0 {
		s += fmt.Sprintf(" The steps that were under way beside it cost %s.", further(withStop, underWay))
	}
	switch {
	case f.afterMicro > 0 && f.contained != nil:
		s += fmt.Sprintf(" The steps it sent after being told to stop cost %s.", further(underWay, underWay+f.afterMicro))
	case f.afterMicro > 0:
		s += fmt.Sprintf(" The steps after the breach cost %s.", further(underWay, underWay+f.afterMicro))
	}
	if f.inc.ViolationType == runproof.PolicyStepTypeDenied {
		s += " Attempting an action it is not permitted to take is a control failure, whatever it cost."
	}
	reasons := []string{map[runproof.PolicyType]string{
		runproof.PolicyCostLimit:      "a spending limit was broken",
		runproof.PolicyExpression:     "a custom rule was broken",
		runproof.PolicyStepTypeDenied: "the agent attempted a forbidden action",
	}[f.inc.ViolationType]}
	if reasons[0] == "" {
		reasons[0] = "a usage limit was broken"
	}
	if f.grade.Overshoot {
		reasons = append(reasons, "the run went at least 50% past the limit")
	}
	if f.grade.Costly {
		reasons = append(reasons, "the run cost $100 or more before it was stopped")
	}
	return s + fmt.Sprintf(" It is rated %s risk because %s.", f.grade.Level, joinAnd(reasons))
}

// actions recommends between two and five things to do, in a fixed order:
// the stop itself, the kind of rule broken, the size of the overshoot, the
// money, the follow-up.
func actions(f incidentFacts) []string {
	var a []string
	switch {
	case f.endedFirst:
		a = append(a, "Have the agent send each step as it takes it, before it ends the run: the step that broke the rule reached runproof after the run had ended, too late to stop it.")
	case f.contained == nil:
		a = append(a, "Make sure runs that break a rule are stopped: this run has no recorded stop.")
	}
	if f.afterStop > 0 && f.contained != nil {
		a = append(a, fmt.Sprintf("Make the agent honour stop decisions: it sent %s after it was told to stop.", count(f.afterStop, "more step", "more steps")))
	}
	if f.withStop > 0 {
		a = append(a, fmt.Sprintf("Have the agent send its steps as it takes them, or in smaller batches: %s came in the same request as the step that broke the rule, so the stop could only reach it after them.",
			count(f.withStop, "more step", "more steps")))
	}
	a = append(a, typeAction[f.inc.ViolationType])
	if f.grade.Overshoot { // as for the risk level
		a = append(a, fmt.Sprintf("Lower the limit or add an earlier warning: the run went %s%% past its limit before it was stopped.",
			Group(percentOver(f.actual, f.threshold))))
	}
	if f.grade.Costly {
		a = append(a, fmt.Sprintf("Review spending approvals for this agent: the run cost %s before it was stopped.", dollars(f.costMicro)))
	}
	if f.inc.RemediationStatus == runproof.RemediationPending {
		a = append(a, "Name an owner for this incident and record the fix once it is in place.")
	}
	if len(a) < 2 {
		a = append(a, "Re-run the task under supervision once the cause is understood.")
	}
	return a[:min(len(a), 5)]
}

// prevented estimates the cost the stop avoided: the average cost per step
// up to the stop times the steps this agent's runs usually take beyond the
// point the run reached — max(0, median − steps taken) — when the run was
// stopped and at least three earlier runs of the agent ended without an
// incident. Otherwise there is no estimate and the method says why. some
// is true for an estimate of more than nothing, which may round to 0 cents.
func prevented(f incidentFacts, h AgentHistory) (cents *int64, some bool, method string) {
	switch {
	case f.contained == nil:
		if f.endedFirst {
			return nil, false, "No estimate: the run had ended before the breach reached runproof, so there was nothing left to stop."
		}
		return nil, false, "No estimate: the run was not stopped, so the stop avoided nothing."
	case h.CompletedRuns < 3:
		return nil, false, "No estimate: fewer than three earlier runs of this agent ended without an incident, so there is no usual run length to compare with."
	case h.TwiceMedianSteps <= 0:
		return nil, false, "No estimate: the usual length of this agent's runs is not known."
	}
	// The steps the run took after its stop, in the same request or
	// later, were not avoided.
	taken := f.upTo + f.withStop + f.underWay + f.afterStop
	remaining2 := max(0, h.TwiceMedianSteps-2*taken) // in half steps: a median may fall between two lengths
	basis := fmt.Sprintf("their median length is %s, over %d earlier runs that ended without an incident; ",
		halfSteps(h.TwiceMedianSteps, "step", "steps"), h.CompletedRuns)
	if taken == f.upTo {
		basis += "this run was stopped after " + count(f.upTo, "step", "steps")
	} else {
		basis += fmt.Sprintf("this run took %s, %s of them up to the stop", count(taken, "step", "steps"), Group(f.upTo))
	}
	switch {
	case 2*taken > h.TwiceMedianSteps:
		// A loop, say: how far it would have gone is not in the agent's
		// usual length, and 0 would read as "the stop saved nothing".
		return nil, false, fmt.Sprintf("No estimate: this run had gone past the usual length of this agent's runs (%s), "+
			"so that length does not tell how much further it would have gone.", basis)
	case remaining2 == 0:
		zero := int64(0)
		return &zero, false, fmt.Sprintf("Estimate: nothing avoided, since this agent's runs usually end at this point (%s).", basis)
	}
	// cents = round(cost × remaining / upTo / 10^6), exactly, with
	// remaining = remaining2 / 2.
	n := new(big.Int).Mul(big.NewInt(f.costMicro), big.NewInt(remaining2))
	d := new(big.Int).Mul(big.NewInt(2*f.upTo), big.NewInt(runproof.MicrocentsPerCent))
	n.Add(n.Lsh(n, 1), d)
	n.Quo(n, d.Lsh(d, 1))
	if !n.IsInt64() {
		return nil, false, "No estimate: the figures are too large to estimate from."
	}
	estimate := n.Int64()
	average := (2*f.costMicro + f.upTo) / (2 * f.upTo)
	perStep := dollars(average)
	if f.costMicro%(f.upTo*runproof.MicrocentsPerCent) != 0 { // not whole cents: the product is of the exact average
		// To the cent, "about $0.01 times 2 steps" would not make $0.01, nor
		// "about $0.34 times 3 steps" $1.03.
		if average < 10*runproof.MicrocentsPerCent || roundCents(average)*remaining2 != 2*estimate {
			perStep = fineDollars(average)
		}
		if !strings.HasPrefix(perStep, "less than") { // "about less than" says nothing more
			perStep = "about " + perStep
		}
	}
	return &estimate, f.costMicro > 0, fmt.Sprintf("Estimate: the average cost per step up to the stop (%s) times the %s this agent's runs usually take beyond this point (%s).",
		perStep, halfSteps(remaining2, "further step", "further steps"), basis)
}

// halfSteps counts n half steps in words: "9 steps", "8.5 steps".
func halfSteps(n int64, one, many string) string {
	if n%2 == 0 {
		return count(n/2, one, many)
	}
	return Group(n/2) + ".5 " + many
}

var (
	uuidRE    = regexp.MustCompile(`(?i)[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	longHexRE = regexp.MustCompile(`(?i)[0-9a-f]{16,}`)
)

// plain reports whether a text from outside (a goal, a tool name) can go in
// a sentence for people as is: short, printable, and free of ids, hashes and
// snake_case words.
func plain(s string, ids []string) bool {
	if s == "" || len(s) > 160 || strings.ContainsAny(s, "_\"“”\\") || strings.Contains(s, runproof.DigestPrefix) ||
		uuidRE.MatchString(s) || longHexRE.MatchString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != '\u200c' && r != '\u200d' { // the joiners of scripts and emoji print
			return false
		}
	}
	for _, id := range ids {
		if id != "" && containsWord(s, id) {
			return false
		}
	}
	return true
}

// containsWord reports whether s holds w as a word of its own, not within
// a longer one: a tenant named "rep" is not in "Write a report".
func containsWord(s, w string) bool {
	edge := func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(w)
		before, _ := utf8.DecodeLastRuneInString(s[:start])
		after, _ := utf8.DecodeRuneInString(s[end:])
		if (start == 0 || edge(before)) && (end == len(s) || edge(after)) {
			return true
		}
		i = start + 1
	}
}

// roundCents rounds micro-cents to whole cents, half up.
func roundCents(micro int64) int64 {
	return (micro + runproof.MicrocentsPerCent/2) / runproof.MicrocentsPerCent
}

// underACent is an amount above zero that rounds to no cent.
const underACent = "less than $0.01"

// dollars writes micro-cents as dollars and cents, "$1,234.50".
func dollars(micro int64) string {
	c := roundCents(micro)
	if c == 0 && micro > 0 {
		return underACent
	}
	return fmt.Sprintf("$%s.%02d", Group(c/100), c%100)
}

// fineDollars writes micro-cents as dollars to a hundredth of a cent,
// "$0.0061", for an amount too small to read in whole cents.
func fineDollars(micro int64) string {
	d := fmt.Sprintf("%.4f", float64(micro)/(100*runproof.MicrocentsPerCent))
	if d == "0.0000" {
		return "less than $0.0001"
	}
	return "$" + strings.TrimRight(d, "0")
}

// further writes what a run's cost grew by from one running total to a
// later one, both in micro-cents, as the difference of the two in whole
// cents: "a further $0.30", or "less than a cent more".
func further(from, to int64) string {
	c := roundCents(to) - roundCents(from)
	if c == 0 {
		return "less than a cent more"
	}
	return fmt.Sprintf("a further $%s.%02d", Group(c/100), c%100)
}

// amount writes a limit's value in words, in its unit.
func amount(t runproof.PolicyType, v int64) string {
	switch t {
	case runproof.PolicyCostLimit:
		return dollars(v)
	case runproof.PolicyTokenLimit:
		return count(v, "token", "tokens")
	case runproof.PolicyStepLimit:
		return count(v, "step", "steps")
	case runproof.PolicyDurationLimit:
		ms := (v + runproof.MicrosPerMilli/2) / runproof.MicrosPerMilli
		if ms == 1000 {
			return "1 second"
		}
		return runproof.FormatFixed(ms, 1000) + " seconds"
	}
	return strconv.FormatInt(v, 10)
}

// exactAmount writes a limit's value as amount does, to its unit's last
// digit: $1.0005, 1.0004 seconds.
func exactAmount(t runproof.PolicyType, v int64) string {
	switch t {
	case runproof.PolicyCostLimit:
		perDollar := unitScale(t)
		_, frac, _ := strings.Cut(runproof.FormatFixed(v, perDollar), ".")
		return fmt.Sprintf("$%s.%s", Group(v/perDollar), frac+strings.Repeat("0", max(0, 2-len(frac))))
	case runproof.PolicyDurationLimit:
		if s := runproof.FormatFixed(v, unitScale(t)); s != "1" {
			return s + " seconds"
		}
		return "1 second"
	}
	return amount(t, v)
}

// unitScale is how many of a limit's stored units make the unit the
// debrief writes: micro-cents in a dollar, microseconds in a second.
func unitScale(t runproof.PolicyType) int64 {
	switch t {
	case runproof.PolicyCostLimit:
		return 100 * runproof.MicrocentsPerCent
	case runproof.PolicyDurationLimit:
		return 1000 * runproof.MicrosPerMilli
	}
	return 1
}

// decimals is how many decimals v/scale has, written exactly.
func decimals(v, scale int64) int {
	_, frac, _ := strings.Cut(runproof.FormatFixed(v, scale), ".")
	return len(frac)
}

// roundTo rounds v/scale to d decimals, half up, and returns it in v's
// units.
func roundTo(v, scale int64, d int) int64 {
	unit := scale
	for range d {
		unit /= 10
	}
	if unit <= 1 {
		return v
	}
	return (v + unit/2) / unit * unit
}

// lateStep is how long after its own time a step may reach runproof before
// the debrief says that the delay it gives is the agent's, not runproof's:
// the clock skew runproof allows the other way.
const lateStep = runproof.MaxClockSkew

// after writes a delay since the breaking step: "immediately", "0.2
// seconds after that step", "2 hours 57 minutes after that step".
// after says how long after the breaking step something came. An agent
// reports a step once it is done, so a step that ran for most of that
// time is said to: "28 seconds after that step began, 0.04 seconds after
// it ended".
func (f incidentFacts) after(s float64) string {
	switch {
	case s == 0:
		return "immediately"
	case f.ran < 1 || f.ran < s/2 || f.ran > s:
		return Duration(s) + " after that step"
	case s-f.ran < 0.0005:
		return Duration(s) + " after that step began, as it ended"
	}
	return Duration(s) + " after that step began, " + Duration(s-f.ran) + " after it ended"
}

// Duration writes a number of seconds for people, as the debrief's
// sentences and reports show delays: milliseconds under a second
// ("0.035 seconds"), tenths under ten ("4.2 seconds"), whole seconds under
// a minute, minutes and seconds under ten minutes ("1 minute 30 seconds"),
// then minutes, then hours and minutes ("2 hours 57 minutes").
func Duration(s float64) string {
	switch {
	case s < 59.5: // what rounds to a minute is one
		r := math.Round(s*1000) / 1000
		switch {
		case s >= 10:
			r = math.Round(s)
		case s >= 1:
			r = math.Round(s*10) / 10
		}
		if r == 1 {
			return "1 second"
		}
		return formatSeconds(r) + " seconds"
	case s < 599.5: // under ten minutes: minutes and seconds, not a minute's rounding
		m, sec := int64(math.Round(s))/60, int64(math.Round(s))%60
		if sec == 0 {
			return count(m, "minute", "minutes")
		}
		return count(m, "minute", "minutes") + " " + count(sec, "second", "seconds")
	case s < 3570: // under 59.5 minutes
		return count(int64(math.Round(s/60)), "minute", "minutes")
	}
	minutes := int64(math.Round(s / 60))
	h, m := minutes/60, minutes%60
	out := count(h, "hour", "hours")
	if m > 0 {
		out += " " + count(m, "minute", "minutes")
	}
	return out
}

// percentOver is how far actual is over threshold, in whole percent
// (rounded half up); 0 when the threshold is 0.
func percentOver(actual, threshold int64) int64 {
	if threshold <= 0 || actual <= threshold {
		return 0
	}
	return (200*(actual-threshold) + threshold) / (2 * threshold)
}

func count(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Group(n) + " " + many
}

// Group writes n with thousands separators: 12,000.
func Group(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func ordinal(n int64) string {
	suffix := "th"
	switch n % 10 {
	case 1:
		suffix = "st"
	case 2:
		suffix = "nd"
	case 3:
		suffix = "rd"
	}
	if n%100 >= 11 && n%100 <= 13 {
		suffix = "th"
	}
	return Group(n) + suffix
}

func joinAnd(s []string) string {
	if len(s) == 1 {
		return s[0]
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
