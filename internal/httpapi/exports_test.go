package httpapi_test

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/evidence/evidencetest"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// stoppedRun sends a run that breaks a cost limit and returns its incident.
func stoppedRun(t *testing.T, e *env, admin, agent, runID string) string {
	t.Helper()
	e.do("POST", "/api/v1/policies", admin, map[string]any{"name": "cost cap", "type": "cost_limit", "threshold": 100, "action": "stop"})
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": runID, "agent_id": "bot", "goal": "answer a ticket"}))
	var res struct {
		IncidentID string `json:"incident_id"`
	}
	e.must(200, e.do("POST", "/api/v1/runs/"+runID+"/steps", agent, steps(0, 3, 30, 10))).decode(t, &res)
	if res.IncidentID == "" {
		t.Fatal("no incident")
	}
	return res.IncidentID
}

type problemDoc struct {
	Status int                   `json:"status"`
	Detail string                `json:"detail"`
	Errors []runproof.FieldError `json:"errors"`
}

func TestExportsAPI(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		viewer, exporter, auditor := e.key("acme", runproof.RoleViewer), e.key("acme", runproof.RoleExporter), e.key("acme", runproof.RoleAuditor)
		other := e.key("globex", runproof.RoleAdmin)
		inc := stoppedRun(t, e, admin, agent, "r-1")
		e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-clean", "agent_id": "bot"}))
		e.must(200, e.do("POST", "/api/v1/runs/r-clean/steps", agent, steps(0, 0, 1, 10)))

		// POST /exports makes a record; the download matches its checksum.
		var rec struct {
			ID, Status, Checksum, Origin, RequestedBy, SourceComponent, CorrelationID, BundleID string
			DeliveredAt                                                                         *string
		}
		r := e.do("POST", "/api/v1/exports", exporter, map[string]any{"incident_id": inc, "bundle_type": "soc2", "format": "json",
			"export_reason": "audit"})
		e.must(201, r)
		var raw map[string]any
		r.decode(t, &raw)
		rec.ID, rec.Status, rec.Checksum = raw["id"].(string), raw["status"].(string), raw["checksum"].(string)
		if rec.Status != "completed" || raw["origin"] != "HUMAN" || raw["source_component"] != "api" || raw["requested_by"] == "" ||
			raw["correlation_id"] == "" || raw["delivered_at"] != nil || r.header.Get("Location") != "/api/v1/exports/"+rec.ID {
			t.Fatalf("export record %v, location %q", raw, r.header.Get("Location"))
		}
		head := e.must(200, e.do("HEAD", "/api/v1/exports/"+rec.ID+"/download", exporter, nil))
		if len(head.body) != 0 || head.header.Get("Content-Length") == "" {
			t.Fatalf("HEAD: %d bytes, Content-Length %q", len(head.body), head.header.Get("Content-Length"))
		}
		e.must(200, e.do("GET", "/api/v1/exports/"+rec.ID, auditor, nil)).decode(t, &raw)
		if raw["delivered_at"] != nil {
			t.Errorf("a HEAD request counted as the delivery: %v", raw)
		}
		dl := e.must(200, e.do("GET", "/api/v1/exports/"+rec.ID+"/download", exporter, nil))
		sum := sha256.Sum256(dl.body)
		if runproof.DigestBytes(dl.body) != rec.Checksum ||
			dl.header.Get("Repr-Digest") != "sha-256=:"+base64.StdEncoding.EncodeToString(sum[:])+":" {
			t.Fatalf("download %s, Repr-Digest %s, record %s", runproof.DigestBytes(dl.body), dl.header.Get("Repr-Digest"), rec.Checksum)
		}
		if err := evidencetest.VerifyContentHash(dl.body); err != nil {
			t.Fatal(err)
		}
		e.must(200, e.do("GET", "/api/v1/exports/"+rec.ID, auditor, nil)).decode(t, &raw)
		if raw["delivered_at"] == nil {
			t.Errorf("delivered_at not set after download: %v", raw)
		}

		// The incident routes answer with the artifact itself.
		for _, kind := range []string{"evidence", "soc2", "executive-debrief"} {
			r := e.must(200, e.do("POST", "/api/v1/incidents/"+inc+"/export/"+kind, exporter, map[string]any{"format": "csv"}))
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || r.header.Get("X-Export-Id") == "" {
				t.Errorf("%s: headers %v", kind, r.header)
			}
		}
		r = e.must(200, e.do("POST", "/api/v1/incidents/"+inc+"/export/executive-debrief", exporter, nil))
		// Prepared by the key's name (its role when it has none), not its id.
		if !strings.Contains(string(r.body), `"bundle_type":"executive_debrief"`) || !strings.Contains(string(r.body), `"prepared_by":"exporter"`) {
			t.Errorf("debrief body %.200s", r.body)
		}

		// Listings: the audit view and the run's view.
		var list struct {
			Items []map[string]any `json:"items"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/audit/exports", auditor, nil)).decode(t, &list)
		if len(list.Items) != 5 {
			t.Errorf("audit/exports lists %d exports, want 5", len(list.Items))
		}
		var runView struct {
			Formats []string         `json:"formats"`
			Exports []map[string]any `json:"exports"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/r-1/export", exporter, nil)).decode(t, &runView)
		if len(runView.Exports) != 5 || len(runView.Formats) == 0 {
			t.Errorf("run export view %+v", runView)
		}
		// ... a page at a time, newest first.
		var second struct {
			Exports []map[string]any `json:"exports"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/llm-runs/r-1/export?limit=2&offset=2", exporter, nil)).decode(t, &second)
		if len(second.Exports) != 2 || second.Exports[0]["id"] != runView.Exports[2]["id"] || second.Exports[0]["id"] == nil {
			t.Errorf("second page of 2 %v, want exports 2 and 3 of %v", second.Exports, runView.Exports)
		}
		e.must(422, e.do("GET", "/api/v1/logs/llm-runs/r-1/export?limit=1000", exporter, nil))

		// Roles: a viewer (or an agent) neither reads export records nor
		// exports nor downloads.
		for _, path := range []string{"/api/v1/exports", "/api/v1/exports/" + rec.ID, "/api/v1/exports/" + rec.ID + "/proof",
			"/api/v1/logs/llm-runs/r-1/export"} {
			e.must(403, e.do("GET", path, viewer, nil))
			e.must(403, e.do("GET", path, agent, nil))
		}
		e.must(403, e.do("POST", "/api/v1/exports", viewer, map[string]any{"incident_id": inc, "format": "json"}))
		e.must(403, e.do("POST", "/api/v1/incidents/"+inc+"/export/evidence", viewer, nil))
		e.must(403, e.do("GET", "/api/v1/exports/"+rec.ID+"/download", viewer, nil))
		e.must(403, e.do("GET", "/api/v1/logs/audit/exports", viewer, nil))

		// Tenants: another tenant sees nothing.
		e.must(404, e.do("GET", "/api/v1/exports/"+rec.ID, other, nil))
		e.must(404, e.do("GET", "/api/v1/exports/"+rec.ID+"/download", other, nil))
		e.must(404, e.do("POST", "/api/v1/incidents/"+inc+"/export/evidence", other, nil))
		e.must(404, e.do("GET", "/api/v1/logs/llm-runs/r-1/export", other, nil))
		e.must(200, e.do("GET", "/api/v1/logs/audit/exports", other, nil)).decode(t, &list)
		if len(list.Items) != 0 {
			t.Errorf("another tenant lists %d exports", len(list.Items))
		}

		// Bad requests: 422 naming the field, and no record.
		for _, tc := range []struct {
			name  string
			key   string
			body  map[string]any
			field string
			says  string
		}{
			{"unknown bundle type", exporter, map[string]any{"incident_id": inc, "bundle_type": "pdf_report", "format": "json"}, "bundle_type", "must be evidence, soc2 or executive_debrief"},
			{"incident of another tenant", other, map[string]any{"incident_id": inc, "format": "json"}, "incident_id", "no such incident"},
			{"debrief of a run without incident", exporter, map[string]any{"run_id": "r-clean", "bundle_type": "executive_debrief", "format": "json"}, "run_id", "has no incident"},
			{"missing format", exporter, map[string]any{"run_id": "r-clean"}, "format", "is required"},
			{"run id no run can have", exporter, map[string]any{"run_id": "../r-1", "format": "json"}, "run_id", "letters, digits"},
			{"long correlation id", exporter, map[string]any{"incident_id": inc, "format": "json", "correlation_id": strings.Repeat("c", 129)}, "correlation_id", "at most 128 bytes"},
		} {
			r := e.do("POST", "/api/v1/exports", tc.key, tc.body)
			var p problemDoc
			r.decode(t, &p)
			if r.status != http.StatusUnprocessableEntity || len(p.Errors) == 0 || p.Errors[0].Field != tc.field ||
				!strings.Contains(p.Errors[0].Message, tc.says) || r.header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d %s", tc.name, r.status, r.body)
			}
		}
		e.must(400, e.do("POST", "/api/v1/exports", exporter, `{"incident_id":`))
		e.must(422, e.do("POST", "/api/v1/exports", exporter, map[string]any{"incident_id": inc, "format": "json", "colour": "red"}))
		e.must(200, e.do("GET", "/api/v1/logs/audit/exports", auditor, nil)).decode(t, &list)
		if len(list.Items) != 5 {
			t.Errorf("bad requests left records: %d exports", len(list.Items))
		}
	})
}

func TestSigningKeysPublished(t *testing.T) {
	store := storetest.OpenSQLite(t)
	dir := t.TempDir()
	keys, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := keys.Active()
	if _, err := keys.Rotate(); err != nil {
		t.Fatal(err)
	}
	e := newSigningEnv(t, store, keys)
	var list struct {
		Items []struct {
			KeyID             string `json:"key_id"`
			PublicKeyPEM      string `json:"public_key_pem"`
			LedgerVerifierKey string `json:"ledger_verifier_key"`
			CreatedAt         string `json:"created_at"`
			Active            bool   `json:"active"`
		} `json:"items"`
	}
	e.must(200, e.do("GET", "/api/v1/signing-keys", e.key("acme", runproof.RoleViewer), nil)).decode(t, &list)
	if len(list.Items) != 2 || !list.Items[0].Active || list.Items[1].Active || list.Items[1].KeyID != old.ID ||
		list.Items[0].KeyID != keys.Active().ID {
		t.Fatalf("keys %+v", list.Items)
	}
	for _, k := range list.Items {
		pub, err := signing.ParsePublicPEM([]byte(k.PublicKeyPEM))
		if err != nil || signing.KeyID(pub) != k.KeyID {
			t.Errorf("key %s: PEM holds %v (%v)", k.KeyID, pub, err)
		}
		if _, err := note.NewVerifier(k.LedgerVerifierKey); err != nil {
			t.Errorf("key %s: ledger verifier key %q: %v", k.KeyID, k.LedgerVerifierKey, err)
		}
	}
	e.must(401, e.do("GET", "/api/v1/signing-keys", "", nil))

	// A key another process makes while the server runs is published at
	// once, with when it was made, not active here.
	other, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	made, err := other.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	e.must(200, e.do("GET", "/api/v1/signing-keys", e.key("acme", runproof.RoleViewer), nil)).decode(t, &list)
	if len(list.Items) != 3 || !list.Items[0].Active || list.Items[2].KeyID != made.ID || list.Items[2].Active {
		t.Fatalf("keys after a rotation elsewhere %+v", list.Items)
	}
	for _, k := range list.Items {
		at, err := time.Parse(time.RFC3339Nano, k.CreatedAt)
		if err != nil || k.KeyID == made.ID && made.CreatedAt.Sub(at).Abs() > time.Second {
			t.Errorf("key %s: created_at %q, made at %s", k.KeyID, k.CreatedAt, made.CreatedAt)
		}
	}
}

func TestMethodNotAllowedAndBearerCase(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	admin := e.key("acme", runproof.RoleAdmin)
	r := e.do("PUT", "/api/v1/policies", admin, nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("PUT /policies: %d Allow %q %s", r.status, r.header.Get("Allow"), r.body)
	}
	r = e.do("POST", "/api/v1/logs/llm-runs", admin, nil)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /logs/llm-runs: %d Allow %q %s", r.status, r.header.Get("Allow"), r.body)
	}
	e.must(404, e.do("HEAD", "/api/v1/logs/nowhere", admin, nil)) // as GET: no such route, not a method refused
	// The problem's instance is the path as sent, a URI reference.
	r = e.must(404, e.do("GET", "/api/v1/logs/llm-runs/r-1%2Fx%20y/envelope", admin, nil))
	if !strings.Contains(string(r.body), `"instance":"/api/v1/logs/llm-runs/r-1%2Fx%20y/envelope"`) {
		t.Errorf("instance not the escaped path: %s", r.body)
	}
	req, _ := http.NewRequest("GET", e.url+"/api/v1/policies", nil)
	req.Header.Set("Authorization", "bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("lower-case bearer scheme: %d", res.StatusCode)
	}
}

// TestExportOutlastsWriteTimeout: an export made in its request, and a
// download, may take longer to answer than the server's write timeout,
// which other requests keep.
func TestExportOutlastsWriteTimeout(t *testing.T) {
	store := storetest.OpenSQLite(t)
	e := newEnv(t, store)
	admin, agent, exporter := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleExporter)
	res := struct{ IncidentID string }{e.stoppedRun(admin, agent)}

	// The same store behind a server whose write timeout has passed by
	// the time any answer is written.
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := service.New(store, service.Options{})
	strict := httptest.NewUnstartedServer(httpapi.New(svc, export.New(store, dir, export.Options{}), httpapi.Options{}))
	strict.Config.WriteTimeout = time.Nanosecond
	strict.Start()
	t.Cleanup(strict.Close)
	tight := &env{t: t, url: strict.URL, svc: svc}

	if r, err := tight.try("GET", "/api/v1/policies", admin, nil); err == nil {
		t.Fatalf("an answer written past the write timeout arrived (status %d): the test shows nothing", r.status)
	}
	var rec struct {
		ID string `json:"id"`
	}
	tight.must(201, tight.do("POST", "/api/v1/exports", exporter, map[string]any{"run_id": "r-1", "format": "json"})).decode(t, &rec)
	tight.must(200, tight.do("GET", "/api/v1/exports/"+rec.ID+"/download", exporter, nil))
	tight.must(200, tight.do("POST", "/api/v1/incidents/"+res.IncidentID+"/export/evidence", exporter, map[string]any{"format": "csv"}))
}

// TestListsSayWhereTheNextPageStarts: an offset-paged list carries the
// offset of its next page while there is one, and not on its last.
func TestListsSayWhereTheNextPageStarts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		e := newEnv(t, store)
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		inc := e.stoppedRun(admin, agent)
		for range 3 {
			e.must(201, e.do("POST", "/api/v1/exports", admin, map[string]any{"incident_id": inc, "format": "json"}))
		}
		type page struct {
			Items      []map[string]any `json:"items"`
			Exports    []map[string]any `json:"exports"`
			NextOffset *int             `json:"next_offset"`
		}
		for _, path := range []string{"/api/v1/exports", "/api/v1/logs/audit/exports", "/api/v1/logs/llm-runs/r-1/export"} {
			var seen []any
			for offset := 0; ; {
				var p page
				e.must(200, e.do("GET", fmt.Sprintf("%s?limit=2&offset=%d", path, offset), admin, nil)).decode(t, &p)
				for _, it := range append(p.Items, p.Exports...) {
					seen = append(seen, it["id"])
				}
				if p.NextOffset == nil {
					break
				}
				if *p.NextOffset != offset+2 || len(p.Items)+len(p.Exports) != 2 {
					t.Fatalf("%s at %d: %d items, next %d", path, offset, len(p.Items)+len(p.Exports), *p.NextOffset)
				}
				offset = *p.NextOffset
			}
			if len(seen) != 3 {
				t.Errorf("%s: %d exports over its pages, want 3: %v", path, len(seen), seen)
			}
		}
		var incs page
		e.must(200, e.do("GET", "/api/v1/incidents?limit=1", admin, nil)).decode(t, &incs)
		if len(incs.Items) != 1 || incs.NextOffset != nil {
			t.Errorf("the one incident: %d items, next %v", len(incs.Items), incs.NextOffset)
		}
	})
}
