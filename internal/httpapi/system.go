package httpapi

import (
	"net/http"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// The system topic of the logs API: runs as runproof saw and handled them
// (docs/logs.md).

type systemRunList struct {
	Items      []service.SystemRun `json:"items"`
	NextCursor string              `json:"next_cursor,omitempty"`
}

func (s *Server) listSystem(w http.ResponseWriter, c *call) error {
	f, err := runFilter(c)
	if err != nil {
		return err
	}
	runs, next, err := s.svc.ListRuns(c.r.Context(), c.tenant(), f)
	if err != nil {
		return err
	}
	items := make([]service.SystemRun, len(runs))
	var meta runproof.EvidenceMeta
	for i, r := range runs {
		items[i] = service.SystemRunOf(r)
		if r.IncidentID != "" {
			meta.IncidentIDs = append(meta.IncidentIDs, r.IncidentID)
		}
	}
	return s.writeEvidence(w, c, systemRunList{Items: items, NextCursor: next}, meta)
}

func (s *Server) systemTelemetry(w http.ResponseWriter, c *call) error {
	from, limit, err := stepPage(c)
	if err != nil {
		return err
	}
	t, err := s.svc.Telemetry(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), from, limit)
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, t, runMeta(t.Run, &t.Snapshot))
}

func (s *Server) systemEvents(w http.ResponseWriter, c *call) error {
	// Export records need the export permission, here as on /exports.
	re, err := s.svc.SystemEvents(c.r.Context(), c.tenant(), c.r.PathValue("run_id"), c.key.Role.Can(runproof.PermExport))
	if err != nil {
		return err
	}
	re.Events = nonNil(re.Events)
	return s.writeEvidence(w, c, re, runMeta(re.Run, &re.Snapshot))
}

func (s *Server) systemAudit(w http.ResponseWriter, c *call) error {
	q := newQuery(c)
	p := runproof.ListAuditParams{TenantID: c.tenant()}
	p.Limit, p.Offset = q.page()
	p.From, p.To = q.period()
	if err := q.err(); err != nil {
		return err
	}
	events, next, err := readPage(p.Limit, p.Offset, func(limit int) ([]runproof.AuditEvent, error) {
		p.Limit = limit
		return s.svc.SystemAudit(c.r.Context(), p)
	})
	if err != nil {
		return err
	}
	return s.writeEvidence(w, c, auditList{Items: nonNil(events), NextOffset: next}, runproof.EvidenceMeta{})
}
