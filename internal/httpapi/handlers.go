package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

func (s *Server) healthz(w http.ResponseWriter, _ *call) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, c *call) error {
	ctx, cancel := context.WithTimeout(c.r.Context(), readyTimeout)
	defer cancel()
	if msg := s.audits.refusal(); msg != "" { // requests are refused meanwhile: send them elsewhere
		w.Header().Set("Retry-After", "5")
		writeProblem(w, c.r, newProblem(http.StatusServiceUnavailable, "not_ready", msg))
		return nil
	}
	if err := s.svc.Ping(ctx); err != nil {
		s.log.WarnContext(c.r.Context(), "store not ready", slog.Any("error", err))
		w.Header().Set("Retry-After", "30")
		why := "the database cannot be reached" // the cause is logged, not shown
		if ctx.Err() != nil {
			why = fmt.Sprintf("the database does not answer within %v", readyTimeout)
		}
		writeProblem(w, c.r, newProblem(http.StatusServiceUnavailable, "not_ready", why))
		return nil
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) metricsHandler(w http.ResponseWriter, c *call) error {
	s.metrics.handler().ServeHTTP(w, c.r)
	return nil
}

// --- write side -----------------------------------------------------------

type policyList struct {
	Items []runproof.Policy `json:"items"`
}

func (s *Server) createPolicy(w http.ResponseWriter, c *call) error {
	var in service.PolicyInput
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	ps, err := s.svc.CreatePolicies(c.r.Context(), c.tenant(), in)
	if err != nil {
		return err
	}
	p := ps[0]
	c.detail = fmt.Sprintf("policy %s: %q v%d (%s)", p.ID, p.Name, p.Version, p.Type)
	w.Header().Set("Location", "/api/v1/policies/"+p.ID)
	return writeJSON(w, http.StatusCreated, p)
}

func (s *Server) retirePolicy(w http.ResponseWriter, c *call) error {
	p, err := s.svc.RetirePolicy(c.r.Context(), c.tenant(), c.r.PathValue("policy_id"))
	if err != nil {
		return err
	}
	c.detail = fmt.Sprintf("policy %s: %q retired (v%d)", p.ID, p.Name, p.Version)
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) policyVersions(w http.ResponseWriter, c *call) error {
	ps, err := s.svc.PolicyVersions(c.r.Context(), c.tenant(), c.r.PathValue("policy_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, policyList{Items: ps})
}

func (s *Server) listPolicies(w http.ResponseWriter, c *call) error {
	ps, err := s.svc.ActivePolicies(c.r.Context(), c.tenant())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, policyList{Items: nonNil(ps)})
}

type runCreated struct {
	RunID      string             `json:"run_id"`
	TraceID    string             `json:"trace_id"`
	SnapshotID string             `json:"policy_snapshot_id"`
	Status     runproof.RunStatus `json:"status"`
}

func (s *Server) createRun(w http.ResponseWriter, c *call) error {
	var in service.RunInput
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	run, created, err := s.svc.CreateRun(c.r.Context(), c.tenant(), in)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/runs/"+run.ID)
	return writeJSON(w, status, runCreated{RunID: run.ID, TraceID: run.TraceID, SnapshotID: run.SnapshotID, Status: run.Status})
}

func (s *Server) getRun(w http.ResponseWriter, c *call) error {
	run, err := s.svc.GetRun(c.r.Context(), c.tenant(), c.r.PathValue("run_id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// stepBatchDoc documents the body of an append-steps call.
type stepBatchDoc struct {
	Steps []service.StepInput `json:"steps" openapi:"required"`
}

func (s *Server) appendSteps(w http.ResponseWriter, c *call) error {
	body, err := readBody(c, "steps: send fewer per call")
	if err != nil {
		return err
	}
	done, err := s.writeTurn(c) // before decoding: a batch waiting its turn holds only its body
	if err != nil {
		return err
	}
	defer done()
	steps, err := service.DecodeSteps(body, s.svc.Now())
	if err != nil {
		return err
	}
	res, err := s.svc.AppendSteps(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), steps)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return runproof.Errorf(runproof.ENOTFOUND, "%s: open the run first with POST /api/v1/runs", runproof.ErrorMessage(err))
	} else if err != nil {
		return err
	}
	for _, st := range res.Steps {
		if !st.Resent {
			s.metrics.steps.WithLabelValues(string(st.Status)).Inc()
		}
	}
	if res.Decision == service.AgentStop {
		s.metrics.stops.Inc()
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) completeRun(w http.ResponseWriter, c *call) error {
	var in service.CompleteInput
	if err := decodeBody(c, &in, true); err != nil {
		return err
	}
	run, err := s.svc.CompleteRun(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), in)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, run)
}

// --- read side --------------------------------------------------------------

// writeEvidence answers with data (a JSON object) plus an "evidence" member
// holding the evidence metadata, whose checksum is the digest of the
// canonical form of data itself.
func (s *Server) writeEvidence(w http.ResponseWriter, c *call, data any, meta runproof.EvidenceMeta) error {
	body, err := marshal(data)
	if err != nil {
		return err
	}
	canon, err := runproof.CanonicalJSON(body)
	if err != nil {
		return err
	}
	meta.TenantID, meta.Actor = c.key.TenantID, c.key.ID
	meta.RecordedAt = s.svc.Now()
	meta.CorrelationID = correlationID(c.r.Context())
	meta.SourceComponent, meta.Origin = "api", c.key.Role.Origin()
	meta.Checksum = runproof.DigestBytes(canon)
	meta.PolicyIDs, meta.IncidentIDs = uniq(meta.PolicyIDs), uniq(meta.IncidentIDs)
	mb, err := marshal(meta)
	if err != nil {
		return err
	}
	// {"evidence":META,DATA'S MEMBERS}, written in pieces: a page of a
	// long trace is megabytes, not to be copied once more.
	members := [][]byte{nil, nil}
	if inner := bytes.TrimSpace(body[1 : len(body)-1]); len(inner) > 0 {
		members = [][]byte{[]byte(","), inner}
	}
	writeBody(w, http.StatusOK, "application/json", []byte(`{"evidence":`), mb, members[0], members[1], []byte("}\n"))
	return nil
}

// runMeta is the evidence metadata of one run.
func runMeta(run runproof.Run, snap *runproof.Snapshot) runproof.EvidenceMeta {
	m := runproof.EvidenceMeta{RunID: run.ID, TraceID: run.TraceID, OccurredAt: &run.StartedAt}
	if run.IncidentID != "" {
		m.IncidentIDs = []string{run.IncidentID}
	}
	if snap != nil {
		for _, p := range snap.Policies {
			m.PolicyIDs = append(m.PolicyIDs, p.ID)
		}
	}
	return m
}

type runList struct {
	Items      []runproof.Run `json:"items"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

// runFilter reads the query of a list of runs: limit, cursor, agent_id,
// status, from and to.
func runFilter(c *call) (service.RunFilter, error) {
	q := newQuery(c)
	f := service.RunFilter{AgentID: q.str("agent_id"), Cursor: q.str("cursor"), Limit: q.limit(),
		Status: runproof.RunStatus(q.oneOf("status", runproof.RunStatuses))}
	f.From, f.To = q.period()
	if f.Cursor != "" && !service.ValidCursor(f.Cursor) {
		q.errs.Add("cursor", "is not a cursor this API gave out")
	}
	return f, q.err()
}

func (s *Server) listRuns(w http.ResponseWriter, c *call) error {
	f, err := runFilter(c)
	if err != nil {
		return err
	}
	runs, next, err := s.svc.ListRuns(c.r.Context(), c.tenant(), f)
	if err != nil {
		return err
	}
	var meta runproof.EvidenceMeta
	for _, r := range runs {
		if r.IncidentID != "" {
			meta.IncidentIDs = append(meta.IncidentIDs, r.IncidentID)
		}
	}
	return s.writeEvidence(w, c, runList{Items: nonNil(runs), NextCursor: next}, meta)
}

func (s *Server) runAndSnapshot(c *call) (runproof.Run, *runproof.Snapshot, error) {
	run, snap, err := s.svc.RunSnapshot(c.r.Context(), c.tenant(), c.r.PathValue("run_id"))
	if err != nil {
		return runproof.Run{}, nil, err
	}
	return run, &snap, nil
}

func (s *Server) envelope(w http.ResponseWriter, c *call) error {
	run, snap, err := s.runAndSnapshot(c)
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, run, runMeta(run, snap))
}

type traceDoc struct {
	RunID   string          `json:"run_id"`
	TraceID string          `json:"trace_id"`
	Steps   []runproof.Step `json:"steps"`
	// NextFromIndex is where the next page starts (from_index), when the
	// run has steps after these.
	NextFromIndex *int64 `json:"next_from_index,omitempty"`
}

// stepPage parses the page of a run's steps a query asks for: from_index
// (0 by default) and limit (1 to the route's most, service.MaxTracePage;
// 0 when not given).
func stepPage(c *call) (from int64, limit int, err error) {
	q := newQuery(c)
	from, limit = q.count("from_index"), q.limit()
	return from, limit, q.err()
}

func (s *Server) trace(w http.ResponseWriter, c *call) error {
	from, limit, err := stepPage(c)
	if err != nil {
		return err
	}
	page, err := s.svc.Trace(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), from, limit)
	if err != nil {
		return err
	}
	doc := traceDoc{RunID: page.Run.ID, TraceID: page.Run.TraceID, Steps: nonNil(page.Steps)}
	if page.Next >= 0 {
		doc.NextFromIndex = &page.Next
	}
	return s.writeEvidence(w, c, doc, runMeta(page.Run, &page.Snapshot))
}

func (s *Server) governance(w http.ResponseWriter, c *call) error {
	g, err := s.svc.Governance(c.r.Context(), c.tenant(), c.r.PathValue("run_id"))
	if err != nil {
		return err
	}
	g.Incidents = nonNil(g.Incidents)
	return s.writeEvidence(w, c, g, runMeta(g.Run, &g.Snapshot))
}

func (s *Server) replay(w http.ResponseWriter, c *call) error {
	// Audit events need the audit permission, here as on /logs/audit.
	rp, err := s.svc.Replay(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), c.key.Role.Can(runproof.PermAudit))
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, rp, runMeta(rp.Run, &rp.Snapshot))
}

func (s *Server) systemSnapshot(w http.ResponseWriter, c *call) error {
	run, snap, err := s.runAndSnapshot(c)
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, snap, runMeta(run, snap))
}

type incidentList struct {
	Items      []runproof.Incident `json:"items"`
	NextOffset *int                `json:"next_offset,omitempty"` // of the next page, when there is one
}

func (s *Server) listIncidents(w http.ResponseWriter, c *call) error {
	q := newQuery(c)
	p := runproof.ListIncidentsParams{TenantID: c.tenant(), RunID: q.str("run_id"), RemediationStatus: q.oneOf("status", runproof.RemediationStatuses)}
	p.Limit, p.Offset = q.page()
	p.From, p.To = q.period()
	p.DetectedBefore = q.time("detected_before")
	if err := q.err(); err != nil {
		return err
	}
	incs, next, err := readPage(p.Limit, p.Offset, func(limit int) ([]runproof.Incident, error) {
		p.Limit = limit
		return s.svc.ListIncidents(c.r.Context(), p)
	})
	if err != nil {
		return err
	}
	var meta runproof.EvidenceMeta
	for _, i := range incs {
		meta.IncidentIDs = append(meta.IncidentIDs, i.ID)
		meta.PolicyIDs = append(meta.PolicyIDs, i.PolicyID)
	}
	return s.writeEvidence(w, c, incidentList{Items: nonNil(incs), NextOffset: next}, meta)
}

func (s *Server) getIncident(w http.ResponseWriter, c *call) error {
	inc, err := s.svc.GetIncident(c.r.Context(), c.tenant(), c.r.PathValue("incident_id"))
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, inc, runproof.EvidenceMeta{RunID: inc.RunID, OccurredAt: &inc.ViolationAt,
		PolicyIDs: []string{inc.PolicyID}, IncidentIDs: []string{inc.ID}})
}

func (s *Server) setRemediation(w http.ResponseWriter, c *call) error {
	var in service.RemediationInput
	if err := decodeBody(c, &in, false); err != nil {
		return err
	}
	inc, err := s.svc.SetRemediation(c.r.Context(), c.tenant(), c.r.PathValue("incident_id"), in)
	if err != nil {
		return err
	}
	// The audit log keeps every note, which the incident keeps only the
	// latest of.
	c.detail = "remediation " + inc.RemediationStatus
	if inc.RemediationNotes != "" {
		c.detail += ": " + inc.RemediationNotes
	}
	return writeJSON(w, http.StatusOK, inc)
}

type auditList struct {
	Items      []runproof.AuditEvent `json:"items"`
	NextOffset *int                  `json:"next_offset,omitempty"` // of the next page, when there is one
}

func (s *Server) listAudit(category string) handler {
	return func(w http.ResponseWriter, c *call) error {
		q := newQuery(c)
		p := runproof.ListAuditParams{TenantID: c.tenant(), Category: category}
		if category == "" {
			p.Category = q.oneOf("category", runproof.AuditCategories)
		}
		p.Limit, p.Offset = q.page()
		p.From, p.To = q.period()
		if err := q.err(); err != nil {
			return err
		}
		events, next, err := readPage(p.Limit, p.Offset, func(limit int) ([]runproof.AuditEvent, error) {
			p.Limit = limit
			return s.svc.ListAudit(c.r.Context(), p)
		})
		if err != nil {
			return err
		}
		return s.writeEvidence(w, c, auditList{Items: nonNil(events), NextOffset: next}, runproof.EvidenceMeta{})
	}
}

// readPage reads the page of at most limit items from offset on with
// read, asking it for one more to know whether a next page has any, and
// returns the offset of the next page: nil when there is none.
func readPage[T any](limit, offset int, read func(limit int) ([]T, error)) ([]T, *int, error) {
	items, err := read(limit + 1)
	if err != nil || len(items) <= limit {
		return items, nil, err
	}
	next := offset + limit
	return items[:limit], &next, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// uniq returns the distinct ids of s in first-seen order, never nil.
func uniq(s []string) []string {
	out := make([]string, 0, len(s))
	for _, id := range s {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}
