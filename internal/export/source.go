package export

import (
	"context"
	"slices"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
)

// historyRuns is how many of the agent's latest runs the cost-prevented
// estimate looks at.
const historyRuns = 100

// source gathers everything a bundle is built from. A run asked for
// without an incident that a policy stopped since is refused: its bundle
// would hold an incident its export record does not name, and be
// attested, reviewed and listed without it.
func (e *Exporter) source(ctx context.Context, r request) (evidence.Source, error) {
	var src evidence.Source
	var err error
	if src.Run, err = e.store.GetRun(ctx, r.TenantID, r.RunID); err != nil {
		return src, err
	}
	if r.IncidentID == "" && src.Run.IncidentID != "" {
		return src, runproof.Errorf(runproof.ECONFLICT, "run %q was stopped by a policy (incident %s) after this export was asked for: "+
			"ask again, to export the run with its incident", r.RunID, src.Run.IncidentID)
	}
	if src.Snapshot, err = e.store.GetSnapshot(ctx, r.TenantID, src.Run.SnapshotID); err != nil {
		return src, err
	}
	if r.IncidentID != "" {
		inc, err := e.store.GetIncident(ctx, r.TenantID, r.IncidentID)
		if err != nil {
			return src, err
		}
		src.Incident = &inc
	}
	// The steps' content is read only for a bundle that shows it.
	src.Steps = e.steps(ctx, src.Run, src.Incident, r.showsContent())
	if r.BundleType == runproof.BundleSOC2 {
		at := src.Run.StartedAt // what the compliance period defaults around
		if src.Incident != nil {
			at = src.Incident.DetectedAt
		}
		if src.Review, err = e.priorReview(ctx, r, at); err != nil {
			return src, err
		}
	}
	src.History, err = e.history(ctx, src.Run)
	return src, err
}

// stepPage is how many steps an export reads at a time.
const stepPage = 1000

// steps yields the steps the run had when it was read, a page at a time:
// steps are never changed once stored, so the pages add up to the run as
// it was read, whatever is appended meanwhile. The builder checks that
// they are all there; with a ledger, those it sealed are checked against
// it (ECONFLICT when one was changed since). An incident, which is not
// sealed, is checked against its inflection step, which is
// (Incident.CheckInflection). The steps come with their content only
// withContent.
func (e *Exporter) steps(ctx context.Context, run runproof.Run, inc *runproof.Incident, withContent bool) evidence.StepSeq {
	return func(yield func(runproof.Step, error) bool) {
		inflectionChecked := inc == nil
		var check *ledger.StepsCheck
		if e.ledger != nil {
			var err error
			if check, err = e.ledger.CheckSteps(ctx, run.TenantID, run.ID, !withContent); err != nil {
				yield(runproof.Step{}, err)
				return
			}
		}
		for from := int64(0); from < run.Totals.Steps; {
			page, err := e.store.ListSteps(ctx, runproof.ListStepsParams{TenantID: run.TenantID, RunID: run.ID,
				FromIndex: from, Limit: int(min(stepPage, run.Totals.Steps-from)), MaxContentBytes: runproof.StepPageBytes,
				WithoutContent: !withContent})
			if err != nil {
				yield(runproof.Step{}, err)
				return
			}
			for _, s := range page {
				if check != nil {
					if err := check.Add(s); err != nil {
						yield(runproof.Step{}, err)
						return
					}
				}
				if !inflectionChecked && (s.Index == inc.InflectionStepIndex || s.IsInflection) {
					// The step it names, or the run's inflection before it.
					if err := inc.CheckInflection(s, run); err != nil {
						yield(runproof.Step{}, err)
						return
					}
					inflectionChecked = true
				}
				if !yield(s, nil) {
					return
				}
			}
			if len(page) == 0 {
				return
			}
			from = page[len(page)-1].Index + 1
		}
		if !inflectionChecked { // its inflection step is not among the run's
			yield(runproof.Step{}, inc.CheckInflection(runproof.Step{}, run))
			return
		}
		if check != nil {
			now, err := e.store.GetRun(ctx, run.TenantID, run.ID)
			if err == nil {
				err = check.Done(ctx, now.Totals.Steps)
			}
			if err != nil {
				yield(runproof.Step{}, err)
			}
		}
	}
}

// priorReview returns the latest review of the run's SOC 2 exports of the
// same incident and compliance period (its ends defaulting around at)
// made before this export was requested (nil if none): a rebuilt export
// shows the same review, whatever came after, and a sign-off on one day's
// bundle does not vouch for a year's. The scope asked for is left out: it
// does not change what a SOC 2 bundle holds.
// A review of a bundle not known to hold every step (one made before
// runproof recorded it, which Review no longer takes) is not carried over:
// nil.
func (e *Exporter) priorReview(ctx context.Context, r request, at time.Time) (*runproof.Review, error) {
	reviews, err := e.store.RunReviews(ctx, r.TenantID, r.RunID)
	if err != nil {
		return nil, err
	}
	from, to := evidence.CompliancePeriod(at, r.PeriodStart, r.PeriodEnd)
	for i := len(reviews) - 1; i >= 0; i-- {
		if !reviews[i].ReviewedAt.Before(r.CreatedAt) {
			continue
		}
		reviewed, err := e.store.GetExport(ctx, r.TenantID, reviews[i].ExportID)
		if err != nil {
			return nil, err
		}
		rfrom, rto := evidence.CompliancePeriod(at, reviewed.PeriodStart, reviewed.PeriodEnd)
		if reviewed.IncidentID != r.IncidentID || !rfrom.Equal(from) || !rto.Equal(to) {
			continue
		}
		if reviewed.StepsOmitted == nil || *reviewed.StepsOmitted != 0 {
			return nil, nil
		}
		return &reviews[i], nil
	}
	return nil, nil
}

// history describes the agent's runs that started before this one and
// completed without an incident: their number and median length in steps.
// Later runs are left out, so that the same incident always gives the same
// estimate.
func (e *Exporter) history(ctx context.Context, run runproof.Run) (evidence.AgentHistory, error) {
	runs, err := e.store.ListRuns(ctx, runproof.ListRunsParams{TenantID: run.TenantID, AgentID: run.AgentID, To: run.StartedAt,
		Status: runproof.RunCompleted, Limit: historyRuns})
	if err != nil {
		return evidence.AgentHistory{}, err
	}
	var lengths []int64
	for _, r := range runs {
		if r.IncidentID == "" && r.ID != run.ID {
			lengths = append(lengths, r.Totals.Steps)
		}
	}
	if len(lengths) == 0 {
		return evidence.AgentHistory{}, nil
	}
	slices.Sort(lengths)
	n := len(lengths)
	return evidence.AgentHistory{CompletedRuns: n, TwiceMedianSteps: lengths[(n-1)/2] + lengths[n/2]}, nil
}
