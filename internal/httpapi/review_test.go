package httpapi_test

import (
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/evidence"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestSOC2Review: an auditor signs off a SOC 2 export; the SOC 2 bundles
// of the run made afterwards carry the sign-off while the run holds the
// same steps, the bundle reviewed stays as it was, and a step recorded
// later takes the sign-off off until a bundle holding it is reviewed.
func TestSOC2Review(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		viewer, exporter, auditor := e.key("acme", runproof.RoleViewer), e.key("acme", runproof.RoleExporter), e.key("acme", runproof.RoleAuditor)
		other := e.key("globex", runproof.RoleAdmin)
		inc := stoppedRun(t, e, admin, agent, "r-1")
		exportOf := func(bundleType string) string {
			t.Helper()
			var rec struct {
				ID string `json:"id"`
			}
			e.must(201, e.do("POST", "/api/v1/exports", exporter, map[string]any{"incident_id": inc, "bundle_type": bundleType,
				"format": "json"})).decode(t, &rec)
			return rec.ID
		}
		bundleOf := func(id string) evidence.SOC2Bundle {
			t.Helper()
			r := e.must(200, e.do("GET", "/api/v1/exports/"+id+"/download", exporter, nil))
			if err := evidencetest.VerifyContentHash(r.body); err != nil {
				t.Fatal(err)
			}
			var b evidence.SOC2Bundle
			r.decode(t, &b)
			return b
		}
		reviewPath := func(id string) string { return "/api/v1/exports/" + id + "/reviews" }
		signOff := map[string]any{"review_status": "APPROVED", "reviewed_by": "Ada Lovelace", "auditor_notes": "Trace and stop checked."}

		x1 := exportOf("soc2")
		if b := bundleOf(x1); b.ReviewStatus != evidence.ReviewPending || b.ReviewedBy != "" {
			t.Fatalf("a bundle never reviewed: %s by %q", b.ReviewStatus, b.ReviewedBy)
		}
		// Who may sign off, and what.
		e.must(403, e.do("POST", reviewPath(x1), exporter, signOff))
		e.must(403, e.do("POST", reviewPath(x1), viewer, signOff))
		e.must(404, e.do("POST", reviewPath(x1), other, signOff))
		e.must(404, e.do("POST", reviewPath("no-such-export"), auditor, signOff))
		e.must(409, e.do("POST", reviewPath(exportOf("evidence")), auditor, signOff))
		for field, body := range map[string]map[string]any{
			"review_status": {"review_status": "PENDING"},
			"auditor_notes": {"review_status": "REVIEWED", "auditor_notes": strings.Repeat("n", 2001)},
			"reviewed_by":   {"review_status": "REVIEWED", "reviewed_by": "Ada\x00"},
		} {
			var p problemDoc
			e.must(422, e.do("POST", reviewPath(x1), auditor, body)).decode(t, &p)
			if len(p.Errors) != 1 || p.Errors[0].Field != field {
				t.Errorf("%v: %+v, want the problem to name %s", body, p, field)
			}
		}

		var rv runproof.Review
		e.must(201, e.do("POST", reviewPath(x1), auditor, signOff)).decode(t, &rv)
		if rv.Status != "APPROVED" || rv.ReviewedBy != "Ada Lovelace" || rv.ExportID != x1 || rv.RunSteps != 4 || rv.KeyID == "" {
			t.Fatalf("review %+v", rv)
		}
		var list struct {
			Items []runproof.Review `json:"items"`
		}
		e.must(200, e.do("GET", reviewPath(x1), exporter, nil)).decode(t, &list)
		if len(list.Items) != 1 || list.Items[0].ID != rv.ID {
			t.Errorf("reviews of the export: %+v", list.Items)
		}
		e.must(404, e.do("GET", reviewPath(x1), other, nil))

		// The bundle reviewed is as it was; the next one carries the sign-off.
		if b := bundleOf(x1); b.ReviewStatus != evidence.ReviewPending {
			t.Errorf("the bundle reviewed changed: %s", b.ReviewStatus)
		}
		b := bundleOf(exportOf("soc2"))
		if b.ReviewStatus != "APPROVED" || b.ReviewedBy != "Ada Lovelace" || b.AuditorNotes != "Trace and stop checked." ||
			b.ReviewedAt != runproof.FormatTime(rv.ReviewedAt) || !strings.Contains(b.AttestationStatement, "Signed off by Ada Lovelace") {
			t.Errorf("the bundle after the sign-off: %s by %q at %q, notes %q; attestation %q",
				b.ReviewStatus, b.ReviewedBy, b.ReviewedAt, b.AuditorNotes, b.AttestationStatement)
		}
		var audit struct {
			Items []runproof.AuditEvent `json:"items"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/audit?limit=100", auditor, nil)).decode(t, &audit)
		found := false
		for _, ev := range audit.Items {
			found = found || ev.Action == "POST /api/v1/exports/{export_id}/reviews" && strings.Contains(ev.Detail, "APPROVED by Ada Lovelace")
		}
		if !found {
			t.Error("no audit event of the sign-off that says what it was")
		}

		// A step after the stop: the run no longer holds what was signed off.
		e.must(200, e.do("POST", "/api/v1/runs/r-1/steps", agent, steps(4, 4, 1, 10)))
		x3 := exportOf("soc2")
		if b := bundleOf(x3); b.ReviewStatus != evidence.ReviewPending || b.ReviewedBy != "" {
			t.Errorf("a bundle with a step the sign-off did not cover: %s by %q", b.ReviewStatus, b.ReviewedBy)
		}
		var p problemDoc
		e.must(409, e.do("POST", reviewPath(x1), auditor, signOff)).decode(t, &p)
		if !strings.Contains(p.Detail, "export its SOC 2 bundle again") {
			t.Errorf("reviewing a bundle the run has outgrown: %s", p.Detail)
		}
		e.must(201, e.do("POST", reviewPath(x3), auditor, map[string]any{"review_status": "REVIEWED"}))
		if b := bundleOf(exportOf("soc2")); b.ReviewStatus != "REVIEWED" || b.ReviewedBy == "" {
			t.Errorf("after the new sign-off: %s by %q", b.ReviewStatus, b.ReviewedBy)
		}

		// A bundle without the raw steps: it does not carry the sign-off,
		// whose controls saw them, and is not signed off itself.
		var short struct {
			ID string `json:"id"`
		}
		e.must(201, e.do("POST", "/api/v1/exports", exporter, map[string]any{"incident_id": inc, "bundle_type": "soc2",
			"format": "json", "include_raw_steps": false})).decode(t, &short)
		if b := bundleOf(short.ID); b.ReviewStatus != evidence.ReviewPending || b.StepsOmitted == 0 {
			t.Errorf("a bundle without its steps: %s, %d steps omitted", b.ReviewStatus, b.StepsOmitted)
		}
		e.must(409, e.do("POST", reviewPath(short.ID), auditor, signOff)).decode(t, &p)
		if !strings.Contains(p.Detail, "leaves out") {
			t.Errorf("reviewing a bundle without its steps: %s", p.Detail)
		}

		// A remediation recorded since changes the controls the sign-off saw.
		e.must(200, e.do("POST", "/api/v1/incidents/"+inc+"/remediation", admin, map[string]any{"remediation_status": "completed"}))
		x4 := exportOf("soc2")
		if b := bundleOf(x4); b.ReviewStatus != evidence.ReviewPending || b.ReviewedBy != "" {
			t.Errorf("a bundle whose remediation the sign-off did not see: %s by %q", b.ReviewStatus, b.ReviewedBy)
		}
		// ... and a bundle from before it can no longer be signed off: its
		// sign-off would hold for no bundle made now.
		e.must(201, e.do("POST", reviewPath(x4), auditor, signOff))
		e.must(409, e.do("POST", reviewPath(x3), auditor, map[string]any{"review_status": "REVIEWED"})).decode(t, &p)
		if !strings.Contains(p.Detail, `shows remediation "pending", the incident's is now "completed"`) {
			t.Errorf("reviewing a bundle of an earlier remediation: %s", p.Detail)
		}
		if b := bundleOf(exportOf("soc2")); b.ReviewStatus != "APPROVED" {
			t.Errorf("the latest sign-off no longer shows: %s", b.ReviewStatus)
		}
	})
}
