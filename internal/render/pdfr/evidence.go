package pdfr

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// evidenceReport lays out the engineer's report: cover, summary, chart,
// policy context, integrity, then the step timeline.
func evidenceReport(ctx context.Context, b *evidence.EvidenceBundle, info Info) *report {
	r := newReport(ctx, info, pageInfo{title: "Evidence report", bundleID: b.BundleID, hash: b.ContentHash, created: b.CreatedAt})
	r.title("Evidence report", "Run "+b.RunID)
	r.fields(coverFields(b))
	r.heading("Summary")
	r.fields(summaryFields(b))
	steps := r.readSteps(b)
	r.chart(b, steps)
	r.policyContext(b.PolicyContext)
	r.integrity(b, "", info)
	r.timeline(b, steps)
	return r
}

// soc2Report lays out the auditor's report: cover with the compliance
// period, control mappings, attestation, review, then the evidence.
func soc2Report(ctx context.Context, b *evidence.SOC2Bundle, info Info) *report {
	e := &b.EvidenceBundle
	r := newReport(ctx, info, pageInfo{title: "SOC 2 evidence report", bundleID: b.BundleID, hash: b.ContentHash, created: b.CreatedAt})
	r.title("SOC 2 evidence report", "Compliance period "+period(b.CompliancePeriodStart, b.CompliancePeriodEnd))
	r.fields(append([]field{ // the compliance period is the subtitle
		{key: "Criteria covered", value: strings.Join(b.CriteriaCovered, ", ")},
	}, coverFields(e)...))

	t := r.table(8,
		column{title: "Control", w: 14},
		column{title: "Name", w: 26, wrap: true},
		column{title: "Description", w: 42, wrap: true},
		column{title: "Evidence provided", w: 72, wrap: true},
		column{title: "Status", w: 26, wrap: true},
	).under(r.set.headingH, func() { r.heading("Criteria mappings") })
	for _, m := range b.ControlMappings {
		c := statusFill(m.ComplianceStatus)
		t.row([]string{m.ControlID, m.ControlName, m.ControlDescription, m.EvidenceProvided, m.ComplianceStatus},
			style{cells: []*rgb{4: &c}})
	}
	t.end()

	r.heading("Attestation statement")
	r.para(b.AttestationStatement)

	r.heading("Review")
	r.fields([]field{
		{key: "Review status", value: b.ReviewStatus},
		{key: "Reviewer", value: orPending(b.ReviewedBy)},
		{key: "Recorded with", value: orPending(prefixed("API key ", b.ReviewKeyID)), mono: b.ReviewKeyID != ""},
		{key: "Review date", value: orPending(when(b.ReviewedAt))},
		{key: "Auditor notes", value: or(b.AuditorNotes, "none")},
	})

	r.heading("Evidence summary")
	r.fields(summaryFields(e))
	steps := r.readSteps(e)
	r.chart(e, steps)
	r.policyContext(e.PolicyContext)
	r.integrity(e, b.EvidenceDigest, info)
	r.timeline(e, steps)
	return r
}

func statusFill(s string) rgb {
	switch s {
	case evidence.StatusDemonstrated:
		return goodFill
	case evidence.StatusPartial:
		return warnFill
	}
	return greyFill
}

func coverFields(b *evidence.EvidenceBundle) []field {
	return []field{
		{key: "Bundle", value: b.BundleID, mono: true},
		{key: "Incident", value: or(b.IncidentID, "none: no stop policy was broken"), mono: b.IncidentID != ""},
		{key: "Run", value: b.RunID, mono: true},
		{key: "Trace", value: b.TraceID, mono: true},
		{key: "Tenant", value: b.TenantID},
		{key: "Agent", value: or(b.AgentID, "not recorded")},
		{key: "Goal", value: or(b.RunGoal, "not recorded")},
		{key: "Run started", value: when(b.RunStartedAt)},
		{key: "Run completed", value: or(when(b.RunCompletedAt), notCompleted(b.RunStatus))},
		{key: "Generated", value: when(b.CreatedAt)},
		{key: "Exported by", value: b.ExportedBy},
		{key: "Reason", value: or(b.ExportReason, "none given")},
	}
}

// notCompleted says why a run has no completion time.
func notCompleted(status runproof.RunStatus) string {
	switch status {
	case runproof.RunRunning:
		return "not yet: the run was still running when exported"
	case runproof.RunStopped:
		return "not yet: the run was stopped, and its agent has not ended it"
	}
	return "not recorded"
}

func summaryFields(b *evidence.EvidenceBundle) []field {
	pc := b.PolicyContext
	steps := evidence.Group(b.TotalSteps)
	if b.FirstStepIndex != nil && b.LastStepIndex != nil {
		steps += fmt.Sprintf(" (index %d to %d)", *b.FirstStepIndex, *b.LastStepIndex)
	}
	if b.StepsOmitted > 0 {
		steps += fmt.Sprintf("; %s left out of this export, the totals count them", evidence.Group(b.StepsOmitted))
	}
	status := string(b.RunStatus)
	if b.TerminationReason != "" && b.TerminationReason != status {
		status += " — " + b.TerminationReason
	}
	fs := []field{
		{key: "Run status", value: status},
		{key: "Steps", value: steps},
		{key: "Tokens", value: evidence.Group(b.TotalTokens)},
		{key: "Cost", value: fmt.Sprintf("%s (%s %s)", dollars(b.TotalCostCents), decimal(b.TotalCostCents), plural(b.TotalCostCents == 1, "cent", "cents"))},
		{key: "Duration", value: fmt.Sprintf("%s ms of step time (%s)", decimal(b.TotalDurationMs), evidence.Duration(b.TotalDurationMs/1000))},
	}
	if pc.ViolatedPolicyName == "" {
		none := "none: no stop policy was broken"
		if n := len(pc.Breaches); n > 0 {
			none += fmt.Sprintf("; %d %s exceeded (see Policy context)", n, plural(n == 1, "warn policy was", "warn policies were"))
		}
		return append(fs, field{key: "Violated policy", value: none})
	}
	fs = append(fs,
		field{key: "Violated policy", value: fmt.Sprintf("%s (%s, version %d)", pc.ViolatedPolicyName, pc.ViolationType, pc.ViolatedPolicyVersion)},
		field{key: "Threshold vs actual", value: breach(pc)},
	)
	if b.ViolationStepIndex != nil {
		fs = append(fs, field{key: "Inflection step", value: strconv.FormatInt(*b.ViolationStepIndex, 10)})
	}
	fs = append(fs,
		field{key: "Violation time", value: when(b.ViolationTimestamp)},
		field{key: "Detection time", value: when(b.DetectionTimestamp) + afterViolation(b.ViolationTimestamp, b.DetectionTimestamp)},
		field{key: "Containment time", value: or(when(b.ContainmentTimestamp)+after(b.DetectionTimestamp, b.ContainmentTimestamp, "detection"), "not contained: the run was not stopped")},
	)
	if b.RemediationStatus != "" {
		fs = append(fs, field{key: "Remediation", value: strings.ReplaceAll(b.RemediationStatus, "_", " ")},
			field{key: "Remediation notes", value: or(b.RemediationNotes, "none yet")})
	}
	return fs
}

// breach states the violated policy's threshold against the actual value.
func breach(pc evidence.PolicyContext) string {
	switch pc.ViolationType {
	case runproof.PolicyStepTypeDenied:
		return "denied step type used: " + pc.ActualValue
	case runproof.PolicyExpression:
		return "rule matched: " + pc.ThresholdValue
	}
	t := pc.ViolationType
	s := fmt.Sprintf("threshold %s %s, actual %s %s", groupDecimal(pc.ThresholdValue), t.UnitFor(pc.ThresholdValue),
		groupDecimal(pc.ActualValue), t.UnitFor(pc.ActualValue))
	th, err1 := strconv.ParseFloat(pc.ThresholdValue, 64)
	ac, err2 := strconv.ParseFloat(pc.ActualValue, 64)
	if err1 == nil && err2 == nil && th > 0 && ac > th {
		if over := math.Round((ac-th)/th*1000) / 10; over > 0 {
			s += fmt.Sprintf(" (%s%% over)", decimal(over))
		} else { // never "0% over", nor a tenth of a percent it is not
			s += " (just over)"
		}
	}
	return s
}

// policyContext lists the snapshot's policies, the violated one marked.
func (r *report) policyContext(pc evidence.PolicyContext) {
	r.heading("Policy context")
	r.fields([]field{{key: "Policy snapshot", value: pc.PolicySnapshotID, mono: true}})
	if pc.ViolatedPolicyName != "" {
		r.fields([]field{
			{key: "Violated policy", value: fmt.Sprintf("%s (version %d)", pc.ViolatedPolicyName, pc.ViolatedPolicyVersion)},
			{key: "Violated policy id", value: pc.ViolatedPolicyID, mono: true},
			{key: "Violation type", value: string(pc.ViolationType)},
			{key: "Threshold vs actual", value: breach(pc)},
		})
	}
	caption := fmt.Sprintf("Active policies (%d)", len(pc.ActivePolicies))
	if len(pc.ActivePolicies) == 0 {
		r.subheading(caption)
		r.note("The run was judged by an empty policy snapshot: no policy was active.")
		return
	}
	t := r.captioned(caption, 8,
		column{title: "Policy", w: 28, wrap: true},
		column{title: "Type", w: 26},
		column{title: "Threshold or rule", w: 36, wrap: true},
		column{title: "Action", w: 13},
		column{title: "Version", w: 14, align: "R"},
		column{title: "Policy id", w: 63, wrap: true, mono: true}, // a UUID on one line
	)
	for _, p := range pc.ActivePolicies {
		s := style{}
		if p.ID == pc.ViolatedPolicyID && p.Version == pc.ViolatedPolicyVersion {
			s = style{fill: &violFill, bold: true}
		}
		t.row([]string{p.Name, string(p.Type), rule(p), string(p.Action), strconv.Itoa(p.Version), p.ID}, s)
	}
	t.end()
	if pc.ViolatedPolicyName != "" {
		r.note("The tinted row is the policy that was broken.")
	}
	r.breaches(pc)
}

// breaches lists every policy the run's steps went over: the violated one,
// another stop policy its inflection step broke too, warn policies.
func (r *report) breaches(pc evidence.PolicyContext) {
	caption := fmt.Sprintf("Policies exceeded (%d)", len(pc.Breaches))
	if len(pc.Breaches) == 0 {
		r.subheading(caption)
		r.note("No step went over a policy.")
		return
	}
	t := r.captioned(caption, 8,
		column{title: "Policy", w: 40, wrap: true},
		column{title: "Action", w: 13},
		column{title: "Threshold or rule", w: 40, wrap: true},
		column{title: "First over at step", w: 26, align: "R"},
		column{title: "Value there", w: 41, wrap: true},
		column{title: "Steps over", w: 20, align: "R"},
	)
	for _, b := range pc.Breaches {
		t.row([]string{fmt.Sprintf("%s (v%d)", b.PolicyName, b.PolicyVersion), string(b.Action),
			strings.TrimSpace(b.ThresholdValue + " " + b.Type.UnitFor(b.ThresholdValue)), strconv.FormatInt(b.FirstStepIndex, 10),
			strings.TrimSpace(b.ActualValue + " " + b.Type.UnitFor(b.ActualValue)), evidence.Group(b.StepsOver)}, style{})
	}
	t.end()
}

// rule is what a policy checks, with its unit.
func rule(p evidence.ActivePolicy) string {
	switch {
	case len(p.StepTypes) > 0:
		return "denies " + strings.Join(p.StepTypes, ", ")
	case p.Expression != "":
		return p.Expression
	case p.Threshold != "":
		return strings.TrimSpace(p.Threshold + " " + p.Type.UnitFor(p.Threshold))
	}
	return ""
}

// integrity states the digests and how to check them offline.
func (r *report) integrity(b *evidence.EvidenceBundle, evidenceDigest string, info Info) {
	r.heading("Integrity")
	fs := []field{{key: "Content hash", value: or(b.ContentHash, "not sealed"), mono: b.ContentHash != ""}}
	if evidenceDigest != "" {
		fs = append(fs, field{key: "Evidence digest", value: evidenceDigest, mono: true})
	}
	r.fields(append(fs, infoFields(info, true)...))
	r.para("The content hash is the SHA-256 digest of the bundle's canonical JSON (RFC 8785) without its content_hash member: " +
		"anyone holding that JSON can recompute it, from bundle.json when this report comes in a signed ZIP. A report exported on its own " +
		"is signed by nothing and has no JSON beside it: export the ZIP for evidence that can be checked. " +
		"Each step's content hash covers the step's fields and the digest of its content, " +
		"so a step proves what was said even when its content is left out.")
	r.subheading("How to verify the signed ZIP")
	r.code("Everything in the ZIP, signature and ledger inclusion proof included:",
		"runproof verify FILE.zip --key pub.pem")
	r.code("With stock tools: the ZIP's seven members, each once (the first line prints SHA256SUMS bundle.json manifest.json "+
		"manifest.sig proof.json report.pdf steps.csv), then, inside the unpacked ZIP, the signature of the manifest and the files "+
		"against the digests it lists (SHA256SUMS is not signed: it finds a damaged file, not a forged one).",
		"zipinfo -1 FILE.zip | LC_ALL=C sort | paste -sd' ' -",
		"openssl pkeyutl -verify -pubin -inkey ../pub.pem -rawin -in manifest.json -sigfile manifest.sig",
		`jq -r '.files[] | "\(.sha256)  \(.name)"' manifest.json | sha256sum -c`)
}

// infoFields states the export, and with ledger where to find its ledger
// position: not here, since the export's entry, or the signed ZIP's
// manifest entry, holds this report's digest, so it is appended after the
// report is made.
func infoFields(info Info, ledger bool) []field {
	fs := []field{{key: "Export", value: or(info.ExportID, "not recorded in this report"), mono: info.ExportID != ""}}
	if ledger {
		fs = append(fs, field{key: "Ledger position", value: "recorded after this report was made: see proof.json in the signed ZIP, or the export's proof"})
	}
	return append(fs, field{key: "Signing key", value: or(info.KeyID, "not recorded in this report"), mono: info.KeyID != ""})
}

// timeline lists the steps on landscape pages, the table header repeated
// on each page: every step, or for a long run those timelineHead,
// timelineAround and timelineTail say, with a row for each stretch left
// out.
func (r *report) timeline(b *evidence.EvidenceBundle, v stepView) {
	if v.err != nil {
		r.pdf.SetError(v.err)
		return
	}
	if b.Steps.Len() > 0 {
		r.landscape = true
		r.addPage()
	}
	r.heading("Step timeline")
	if b.Steps.Len() == 0 {
		if b.StepsOmitted > 0 {
			r.para(fmt.Sprintf("The %s steps of this run are left out of this export; the totals in the summary count all of them.", evidence.Group(b.StepsOmitted)))
		} else {
			r.para("The run has no steps.")
		}
		return
	}
	n := int64(b.Steps.Len())
	left := int64(0) // steps not shown
	for i := range n {
		if !shownStep(b, i) {
			left++
		}
	}
	all := "All " + evidence.Group(n) + " steps of the run in index order."
	switch {
	case n == 1:
		all = "The run's one step."
	case left > 0:
		around := ""
		if b.ViolationStepIndex != nil {
			around = fmt.Sprintf(", the %d on each side of the inflection step", timelineAround)
		}
		all = fmt.Sprintf("The %s steps of the run in index order: the first %s%s and the last %d, "+
			"a row marking each stretch left out; the JSON and CSV (bundle.json and steps.csv in the ZIP) hold every step.", evidence.Group(n), evidence.Group(timelineHead), around, timelineTail)
	}
	r.para(all + " Times are UTC; costs in cents; cumulative columns run from the first step.")
	r.legend(v.marked) // the mark is explained when a row has it
	t := r.table(7.5,
		column{title: "Step", w: 12, align: "R"},
		column{title: "Timestamp (UTC)", w: 40},
		column{title: "Step type", w: 52},
		column{title: "Input tok.", w: 15, align: "R"},
		column{title: "Output tok.", w: 16, align: "R"},
		column{title: "Tokens", w: 14, align: "R"},
		column{title: "Cum. tokens", w: 19, align: "R"},
		column{title: "Cost", w: 15, align: "R"},
		column{title: "Cum. cost", w: 18, align: "R"},
		column{title: "Duration ms", w: 19, align: "R"},
		column{title: "Status", w: 17},
		column{title: "Content hash", w: 30, mono: true},
	)
	cells := make([]string, 12)
	for _, row := range v.rows {
		clear(cells)
		if row.hidden > 0 {
			cells[0] = "…"
			cells[2] = evidence.Group(row.hidden) + " steps not shown"
			cells[6], cells[8] = evidence.Group(row.tokens), decimal(runproof.Cents(row.micro))
			t.row(cells, style{})
			continue
		}
		s := row.step
		cells[0] = strconv.FormatInt(s.StepIndex, 10)
		cells[1] = strings.TrimSuffix(strings.Replace(s.Timestamp, "T", " ", 1), "Z")
		cells[2] = s.StepType
		cells[3] = evidence.Group(s.InputTokens)
		cells[4] = evidence.Group(s.OutputTokens)
		cells[5] = evidence.Group(s.Tokens)
		cells[6] = evidence.Group(row.tokens)
		cells[7] = decimal(s.CostCents)
		cells[8] = decimal(runproof.Cents(row.micro))
		cells[9] = decimal(s.DurationMs)
		cells[10] = string(s.Status)
		if sentAfterStop(b, s) {
			cells[10] += " " + afterStopMark
		}
		cells[11] = strings.TrimPrefix(s.ContentHash, "sha256:")
		var st style
		switch {
		case s.IsInflection:
			st = style{fill: &inflFill, bold: true}
		case s.Status == runproof.StepViolation:
			st = style{fill: &violFill}
		case s.Status == runproof.StepWarning:
			st = style{fill: &warnFill}
		}
		t.row(cells, st)
	}
	t.end()
}

// The step timeline shows the rows of at most the first timelineHead
// steps, the timelineAround on each side of the inflection step and the
// last timelineTail: a table of every step of a long run would be
// thousands of pages, which the PDF library holds whole until it writes
// them (some 4 KB a row). steps.csv and bundle.json hold every step.
const (
	timelineHead   = 1000
	timelineAround = 250
	timelineTail   = 250
)

// afterStopMark marks the status of a step sent after its agent was told to
// stop.
const afterStopMark = "†"

// sentAfterStop reports whether the agent sent step s after it was told to
// stop: s came after the stop and was not under way when the breaking step
// began (begun no later, ended no earlier: the agent's root span, say), as
// runproof judges steps. Times are in one fixed form.
func sentAfterStop(b *evidence.EvidenceBundle, s evidence.TraceStepEvidence) bool {
	if b.ContainmentTimestamp == "" || s.RecordedAt <= b.ContainmentTimestamp {
		return false
	}
	start, err1 := runproof.ParseTime(s.Timestamp)
	violation, err2 := runproof.ParseTime(b.ViolationTimestamp)
	step := runproof.Step{Timestamp: start, DurationMicros: int64(math.Round(s.DurationMs * runproof.MicrosPerMilli))}
	return err1 != nil || err2 != nil || !step.UnderWayAt(violation)
}

// legend explains the row colours of the timeline and, when steps may
// have been sent after the stop, their mark.
func (r *report) legend(afterStop bool) {
	pdf := r.pdf
	y := pdf.GetY()
	x := margin
	r.font(sans, "", 8, ink)
	for _, k := range []struct {
		c    rgb
		text string
	}{
		{inflFill, "inflection step: where the policy was first broken"},
		{violFill, "violation"},
		{warnFill, "warning: near a limit, or over a warn policy"},
	} {
		r.fill(k.c)
		pdf.Rect(x, y+0.6, 6, 3.2, "F")
		r.text(x+8, y+3.4, k.text)
		x += 8 + pdf.GetStringWidth(k.text) + 8
	}
	if afterStop {
		r.text(x, y+3.4, afterStopMark+" sent after the agent was told to stop")
	}
	pdf.SetXY(margin, y+7)
}

// microcents recovers a step's exact cost from its cents, which are a
// whole number of micro-cents.
func microcents(cents float64) int64 { return int64(math.Round(cents * runproof.MicrocentsPerCent)) }
