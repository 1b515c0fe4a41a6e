package pdfr

import (
	"context"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// stepView is what a report shows of a bundle's steps: the chart's points
// and the step timeline's rows, read in one pass over the steps, whether
// they are in memory or read back from the bundle's spool. What it keeps
// is bounded whatever the run's length.
type stepView struct {
	cost, tokens []point       // the chart's running totals, about maxPoint each
	infl         int           // the inflection step among the points, -1 for none
	rows         []timelineRow // the timeline's rows, in order
	marked       bool          // a row has the after-stop mark
	err          error         // why the steps could not be read
}

// timelineRow is a step the timeline shows, or a stretch of steps it
// leaves out (hidden of them), with the running totals after it.
type timelineRow struct {
	step          evidence.TraceStepEvidence
	hidden        int64
	tokens, micro int64
}

// readSteps reads the steps of b for the report; when they cannot be read,
// the view holds why, which the timeline, drawn last, makes the report's
// error (Output returns it): until then the report is drawn as usual.
func (r *report) readSteps(b *evidence.EvidenceBundle) stepView {
	v, err := collectSteps(r.ctx, b)
	if err != nil {
		return stepView{infl: -1, err: err}
	}
	return v
}

// collectSteps reads the steps of b once into the view a report draws.
func collectSteps(ctx context.Context, b *evidence.EvidenceBundle) (stepView, error) {
	v := stepView{infl: -1}
	n := b.Steps.Len()
	stride := max(1, n/maxPoint)
	var micro, tokens, i, hidden int64
	for s, err := range b.Steps.All() {
		if err == nil && i%256 == 0 {
			err = ctx.Err()
		}
		if err != nil {
			return v, err
		}
		shown := shownStep(b, s.StepIndex)
		if shown && hidden > 0 { // its running totals are those up to this step
			v.rows = append(v.rows, timelineRow{hidden: hidden, tokens: tokens, micro: micro})
			hidden = 0
		}
		micro += microcents(s.CostCents)
		tokens += s.Tokens
		if i%stride == 0 || i == n-1 || s.IsInflection {
			if s.IsInflection {
				v.infl = len(v.cost)
			}
			v.cost = append(v.cost, point{s.StepIndex, runproof.Cents(micro)})
			v.tokens = append(v.tokens, point{s.StepIndex, float64(tokens)})
		}
		i++
		if !shown {
			hidden++
			continue
		}
		v.rows = append(v.rows, timelineRow{step: s, tokens: tokens, micro: micro})
		v.marked = v.marked || sentAfterStop(b, s)
	}
	if hidden > 0 {
		v.rows = append(v.rows, timelineRow{hidden: hidden, tokens: tokens, micro: micro})
	}
	return v, nil
}

// shownStep reports whether the timeline shows step i as a row: the first
// timelineHead steps, the timelineAround on each side of the inflection
// step and the last timelineTail, and a step alone between two of those
// (rather than a row saying one is left out).
func shownStep(b *evidence.EvidenceBundle, i int64) bool {
	n := b.Steps.Len()
	kept := func(i int64) bool {
		return i < timelineHead || i >= n-timelineTail ||
			b.ViolationStepIndex != nil && i >= *b.ViolationStepIndex-timelineAround && i <= *b.ViolationStepIndex+timelineAround
	}
	return kept(i) || kept(i-1) && kept(i+1)
}
