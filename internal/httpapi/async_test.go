package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestExportInBackground: asked with Prefer: respond-async, an export is
// answered 202 with its record, pending, and made in the background; the
// record it points to ends completed, or failed when the server's
// background is cancelled (as serve does when it stops).
func TestExportInBackground(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		ctx := context.Background()
		svc := service.New(store, service.Options{})
		dir, err := artifact.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		bg, stop := context.WithCancel(ctx)
		defer stop()
		exporter := export.New(store, dir, export.Options{})
		srv := httptest.NewServer(httpapi.New(svc, exporter, httpapi.Options{Background: bg}))
		defer srv.Close()
		e := &env{t: t, url: srv.URL, svc: svc}
		admin, agent, exp := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleExporter)
		inc := stoppedRun(t, e, admin, agent, "r-1")

		start := func(prefer string) (response, string) {
			t.Helper()
			e.header = http.Header{"Prefer": {prefer}}
			r := e.must(http.StatusAccepted, e.do("POST", "/api/v1/exports", exp, map[string]any{"incident_id": inc, "format": "json"}))
			e.header = nil
			var rec struct{ ID, Status string }
			r.decode(t, &rec)
			if loc := r.header.Get("Location"); rec.Status != "pending" || loc != "/api/v1/exports/"+rec.ID ||
				r.header.Get("Preference-Applied") != "respond-async" {
				t.Fatalf("answered %s, Location %q, Preference-Applied %q: want pending, its record, respond-async",
					rec.Status, loc, r.header.Get("Preference-Applied"))
			}
			if err := exporter.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			return r, rec.ID
		}
		var rec struct {
			Status        string `json:"status"`
			DownloadURL   string `json:"download_url"`
			FailureReason string `json:"failure_reason"`
		}
		_, id := start("wait=10, respond-async")
		e.must(200, e.do("GET", "/api/v1/exports/"+id, exp, nil)).decode(t, &rec)
		if rec.Status != "completed" || rec.DownloadURL == "" {
			t.Fatalf("the export is %s (%q), want completed with a download", rec.Status, rec.DownloadURL)
		}
		e.must(200, e.do("GET", strings.TrimPrefix(rec.DownloadURL, srv.URL), exp, nil))

		stop() // the server stops: what it makes in the background is interrupted
		_, id = start("respond-async")
		e.must(200, e.do("GET", "/api/v1/exports/"+id, exp, nil)).decode(t, &rec)
		if rec.Status != "failed" || !strings.Contains(rec.FailureReason, "interrupted") {
			t.Errorf("the export is %s (%q), want failed, interrupted", rec.Status, rec.FailureReason)
		}
	})
}
