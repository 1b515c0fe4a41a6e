package export

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
)

// Input is an export request as a user sends it (the body of POST /api/v1/exports).
type Input struct {
	Scope           runproof.ExportScope  `json:"scope" openapi:"enum=llm_run|compliance"`
	BundleType      runproof.BundleType   `json:"bundle_type" openapi:"enum=evidence|soc2|executive_debrief"`
	RunID           string                `json:"run_id"`
	IncidentID      string                `json:"incident_id"`
	PeriodStart     string                `json:"period_start"`
	PeriodEnd       string                `json:"period_end"`
	Format          runproof.ExportFormat `json:"format" openapi:"required,enum=json|csv|pdf|zip"`
	ExportReason    string                `json:"export_reason"`
	IncludeRawSteps *bool                 `json:"include_raw_steps"`
	IncludeContent  bool                  `json:"include_content"`
	PreparedFor     string                `json:"prepared_for"`
	PreparedBy      string                `json:"prepared_by"`                                                // debrief: default the requester's name, else "system"
	Classification  string                `json:"classification" openapi:"enum=INTERNAL|CONFIDENTIAL|PUBLIC"` // debrief; default CONFIDENTIAL
	CorrelationID   string                `json:"correlation_id"`
}

// Requester is who asks, as the caller's credentials say (never the body).
type Requester struct {
	ID              string // user id, agent id, key id or "system"
	Origin          runproof.Origin
	SourceComponent string // api, cli, demo, scheduler
	CorrelationID   string // from the request, when the body gives none
	Name            string // how people know them (a key's name), for a debrief's prepared_by; may be empty
}

// maxReason is the longest export_reason, in bytes.
const maxReason = 1000

// request is a checked Input.
type request struct {
	runproof.ExportRequest
	includeRawSteps bool
	includeContent  bool
	preparedFor     string
	preparedBy      string
	classification  string
}

// showsContent reports whether what the request makes shows the steps'
// content: a bundle of steps with content, but a debrief (which shows no
// step) and a CSV (whose rows hold none). Content is read only then.
func (r request) showsContent() bool {
	return r.includeRawSteps && r.includeContent && r.BundleType != runproof.BundleExecutiveDebrief &&
		r.Format != runproof.FormatCSV
}

// checkTimeout bounds checking an export's request, and recording it (a
// few reads, one write): a database that does not answer fails the
// request instead of holding it for as long as an export may take.
const checkTimeout = 30 * time.Second

// prepare checks an export's input (validate), resolves what it covers
// (resolve) and that the tenant's ledger can record it.
func (e *Exporter) prepare(ctx context.Context, tenantID string, who Requester, in Input) (request, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	r, err := e.validate(tenantID, who, in)
	if err != nil {
		return r, err
	}
	if r, err = e.resolve(ctx, r); err != nil {
		return r, err
	}
	if e.ledger != nil {
		if err := e.ledger.Ready(ctx, tenantID); err != nil {
			return r, err // it could not be recorded in the ledger
		}
	}
	return r, nil
}

// validate checks an export's input, reading nothing: every field at
// fault is named at once.
func (e *Exporter) validate(tenantID string, who Requester, in Input) (request, error) {
	var errs runproof.Fields
	now := runproof.Timestamp(e.now())
	r := request{ExportRequest: runproof.ExportRequest{TenantID: tenantID, Scope: in.Scope, BundleType: in.BundleType,
		Format: in.Format, RequestedBy: who.ID, Origin: who.Origin, SourceComponent: who.SourceComponent,
		CorrelationID: in.CorrelationID, ExportReason: in.ExportReason, CreatedAt: now},
		includeRawSteps: in.IncludeRawSteps == nil || *in.IncludeRawSteps, includeContent: in.IncludeContent, preparedFor: in.PreparedFor,
		preparedBy: cmp.Or(in.PreparedBy, who.Name), classification: in.Classification}
	if r.CorrelationID == "" {
		r.CorrelationID = who.CorrelationID
	}
	if r.Scope == "" {
		r.Scope = runproof.ScopeLLMRun
	}
	if r.BundleType == "" {
		r.BundleType = runproof.BundleEvidence
	}
	switch r.Scope {
	case runproof.ScopeLLMRun, runproof.ScopeCompliance:
	case runproof.ScopeAudit, runproof.ScopeSystem:
		errs.Add("scope", "%q exports are not available yet: export a run or an incident (llm_run), "+
			"or a SOC 2 bundle of one for a compliance period (compliance)", r.Scope)
	default:
		errs.Add("scope", "must be llm_run or compliance")
	}
	switch r.BundleType {
	case runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief:
	default:
		errs.Add("bundle_type", "must be evidence, soc2 or executive_debrief")
	}
	switch {
	case r.Format == "":
		errs.Add("format", "is required: json, csv, pdf or zip")
	case r.Format == runproof.FormatZIP && e.keys == nil:
		errs.Add("format", "zip exports need a signing key, and this server has none")
	case !slices.Contains(e.Formats(), r.Format):
		errs.Add("format", "must be json, csv, pdf or zip")
	}
	switch in.Classification {
	case "", evidence.ClassInternal, evidence.ClassConfidential, evidence.ClassPublic:
	default:
		errs.Add("classification", "must be INTERNAL, CONFIDENTIAL or PUBLIC")
	}
	errs.Prose("export_reason", in.ExportReason, maxReason)
	errs.Text("prepared_for", in.PreparedFor, runproof.MaxName)
	errs.Text("prepared_by", in.PreparedBy, runproof.MaxName)
	errs.Text("correlation_id", in.CorrelationID, runproof.MaxCorrelationID)
	for _, f := range []struct{ name, value string }{{"run_id", in.RunID}, {"incident_id", in.IncidentID}} {
		if f.value != "" && !runproof.ValidID(f.value) { // as runs and incidents are stored
			errs.Add(f.name, runproof.IDRule)
		}
	}
	for _, p := range []struct {
		name, value string
		dst         **time.Time
	}{{"period_start", in.PeriodStart, &r.PeriodStart}, {"period_end", in.PeriodEnd, &r.PeriodEnd}} {
		if p.value == "" {
			continue
		}
		t, err := runproof.ParseTime(p.value)
		if err != nil {
			errs.Add(p.name, "must be an RFC 3339 timestamp")
			continue
		}
		if err := runproof.CheckYear(t); err != nil {
			errs.Add(p.name, "%v", err)
			continue
		}
		t = runproof.Timestamp(t)
		*p.dst = &t
	}
	if r.PeriodStart != nil && r.PeriodEnd != nil && !r.PeriodStart.Before(*r.PeriodEnd) {
		errs.Add("period_end", "must be after period_start (runproof keeps times to the microsecond)")
	}
	if r.BundleType != runproof.BundleSOC2 {
		if r.Scope == runproof.ScopeCompliance {
			errs.Add("scope", "compliance is the scope of a SOC 2 bundle: leave it out, or ask for a soc2 bundle")
		}
		for _, p := range []struct{ name, value string }{{"period_start", in.PeriodStart}, {"period_end", in.PeriodEnd}} {
			if p.value != "" {
				errs.Add(p.name, "only a SOC 2 bundle attests a compliance period: leave it out, or ask for a soc2 bundle")
			}
		}
	}
	switch {
	case in.RunID != "" || in.IncidentID != "":
	case r.Scope == runproof.ScopeCompliance:
		errs.Add("run_id", "give a run_id or an incident_id: a compliance export covers one incident within its period "+
			"(exports of a whole period are not available yet)")
	default:
		errs.Add("run_id", "give a run_id or an incident_id")
	}
	if err := errs.Err(); err != nil {
		return r, err
	}
	r.RunID, r.IncidentID = in.RunID, in.IncidentID
	return r, nil
}

// resolve reads what a validated export covers: its run, and its incident
// if any. A reference to a record the tenant does not have (another
// tenant's included) is a bad field.
func (e *Exporter) resolve(ctx context.Context, r request) (request, error) {
	tenantID := r.TenantID
	missing := func(err error, field, what string) error {
		if runproof.ErrorCode(err) == runproof.ENOTFOUND {
			return runproof.Invalid(runproof.FieldError{Field: field, Message: "no such " + what + " in this tenant"})
		}
		return err
	}
	var inc runproof.Incident
	var run runproof.Run
	if r.IncidentID != "" {
		var err error
		if inc, err = e.store.GetIncident(ctx, tenantID, r.IncidentID); err != nil {
			return r, missing(err, "incident_id", "incident")
		}
		if r.RunID != "" && r.RunID != inc.RunID {
			return r, runproof.Invalid(runproof.FieldError{Field: "run_id", Message: "is not the run of this incident"})
		}
		r.RunID = inc.RunID
	} else {
		var err error
		if run, err = e.store.GetRun(ctx, tenantID, r.RunID); err != nil {
			return r, missing(err, "run_id", "run")
		}
		r.IncidentID = run.IncidentID
	}
	if r.BundleType == runproof.BundleExecutiveDebrief && r.IncidentID == "" {
		return r, runproof.Invalid(runproof.FieldError{Field: "run_id",
			Message: "this run has no incident: an executive debrief describes an incident; export an evidence bundle instead"})
	}
	if r.BundleType != runproof.BundleSOC2 {
		return r, nil
	}
	switch {
	case r.IncidentID != "" && (r.PeriodStart != nil || r.PeriodEnd != nil):
		if inc.ID == "" { // named by its run
			var err error
			if inc, err = e.store.GetIncident(ctx, tenantID, r.IncidentID); err != nil {
				return r, err
			}
		}
		return r, checkPeriod(r, inc.DetectedAt, "the incident's detection")
	case r.IncidentID == "" && (r.PeriodStart != nil || r.PeriodEnd != nil):
		return r, checkPeriod(r, run.StartedAt, "the run's start")
	case r.IncidentID == "" && r.Scope == runproof.ScopeCompliance:
		return r, runproof.Invalid(runproof.FieldError{Field: "period_start", Message: "this run has no incident, so no day to attest by default: " +
			"give the compliance period (period_start, period_end, or both), or leave scope out"})
	}
	return r, nil
}

// checkPeriod refuses a SOC 2 compliance period that does not hold at:
// the detection of the bundle's incident, or the start of its run when it
// has none (what, in words). The bundle attests what happened within it.
func checkPeriod(r request, at time.Time, what string) error {
	start, end := evidence.CompliancePeriod(at, r.PeriodStart, r.PeriodEnd)
	when := runproof.FormatTime(at)
	switch {
	case start.After(at):
		return runproof.Invalid(runproof.FieldError{Field: "period_start", Message: fmt.Sprintf(
			"must be at or before %s, %s: the period a SOC 2 bundle attests holds what it attests", what, when)})
	case !end.After(at):
		return runproof.Invalid(runproof.FieldError{Field: "period_end", Message: fmt.Sprintf(
			"must be after %s, %s: the period a SOC 2 bundle attests holds what it attests", what, when)})
	}
	return nil
}
