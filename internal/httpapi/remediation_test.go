package httpapi_test

import (
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestRemediation: an admin records where an incident's remediation
// stands; later bundles show it (the debrief its notes too), and SOC 2
// control CC7.4 is demonstrated once it is completed.
func TestRemediation(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent, auditor := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleAuditor)
		other := e.key("globex", runproof.RoleAdmin)
		inc := stoppedRun(t, e, admin, agent, "r-1")
		path := "/api/v1/incidents/" + inc + "/remediation"
		cc74 := func() evidence.SOC2ControlMapping {
			t.Helper()
			var rec struct {
				ID string `json:"id"`
			}
			e.must(201, e.do("POST", "/api/v1/exports", admin, map[string]any{"incident_id": inc, "bundle_type": "soc2", "format": "json"})).decode(t, &rec)
			var b evidence.SOC2Bundle
			e.must(200, e.do("GET", "/api/v1/exports/"+rec.ID+"/download", admin, nil)).decode(t, &b)
			for _, m := range b.ControlMappings {
				if m.ControlID == "CC7.4" {
					return m
				}
			}
			t.Fatal("no CC7.4 mapping")
			return evidence.SOC2ControlMapping{}
		}
		if got := cc74(); got.ComplianceStatus != evidence.StatusPartial {
			t.Errorf("CC7.4 before any remediation: %+v", got)
		}

		fix := map[string]any{"remediation_status": "in_progress", "remediation_notes": "Raised the cap review to weekly."}
		e.must(403, e.do("POST", path, auditor, fix))
		e.must(404, e.do("POST", path, other, fix))
		var p problemDoc
		e.must(422, e.do("POST", path, admin, map[string]any{"remediation_status": "done"})).decode(t, &p)
		if len(p.Errors) != 1 || p.Errors[0].Field != "remediation_status" {
			t.Errorf("bad status: %+v", p)
		}
		var got runproof.Incident
		e.must(200, e.do("POST", path, admin, fix)).decode(t, &got)
		if got.RemediationStatus != "in_progress" || got.RemediationNotes != "Raised the cap review to weekly." {
			t.Fatalf("incident after the remediation: %+v", got)
		}
		if got := cc74(); got.ComplianceStatus != evidence.StatusPartial ||
			!strings.HasSuffix(got.EvidenceProvided, "remediation in progress, not completed yet.") {
			t.Errorf("CC7.4 with the remediation under way: %+v", got)
		}
		// The notes are kept in the audit log too, where a later note does
		// not replace them.
		var audit struct {
			Items []runproof.AuditEvent `json:"items"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/audit?limit=100", auditor, nil)).decode(t, &audit)
		found := false
		for _, ev := range audit.Items {
			found = found || ev.Detail == "remediation in_progress: Raised the cap review to weekly."
		}
		if !found {
			t.Error("no audit event holding the remediation notes")
		}
		done := map[string]any{"remediation_status": "completed", "remediation_notes": "Weekly reviews in place."}
		e.must(200, e.do("POST", path, admin, done))
		if got := cc74(); got.ComplianceStatus != evidence.StatusDemonstrated ||
			!strings.HasSuffix(got.EvidenceProvided, "remediation completed, what was done is in remediation_notes.") {
			t.Errorf("CC7.4 with the remediation completed: %+v", got)
		}
		var debrief evidence.ExecutiveDebriefBundle
		e.must(200, e.do("POST", "/api/v1/incidents/"+inc+"/export/executive-debrief", admin, map[string]any{"format": "json"})).decode(t, &debrief)
		if debrief.RemediationStatus != "completed" || debrief.RemediationNotes != "Weekly reviews in place." {
			t.Errorf("debrief: %q, %q", debrief.RemediationStatus, debrief.RemediationNotes)
		}
	})
}
