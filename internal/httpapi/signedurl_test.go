package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/signing"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestSignedDownloadURL: an export record's download_url downloads the
// artifact without an API key, records the delivery against the key it was
// made out to, and stops working when changed, moved to another export,
// expired, or once that key is revoked.
func TestSignedDownloadURL(t *testing.T) {
	storetest.Each(t, func(t *testing.T, store runproof.Store) {
		keys, err := signing.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		svc := service.New(store, service.Options{})
		dir, err := artifact.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{Keys: keys}), httpapi.Options{Keys: keys}))
		t.Cleanup(srv.Close)
		e := &env{t: t, url: srv.URL, svc: svc}
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		exporterSecret, exporter, err := svc.CreateAPIKey(context.Background(), "acme", runproof.RoleExporter, "")
		if err != nil {
			t.Fatal(err)
		}
		inc := stoppedRun(t, e, admin, agent, "r-1")
		exportOf := func(format string) (id, checksum, download string) {
			var rec struct {
				ID          string `json:"id"`
				Checksum    string `json:"checksum"`
				DownloadURL string `json:"download_url"`
			}
			e.must(201, e.do("POST", "/api/v1/exports", exporterSecret, map[string]any{"incident_id": inc, "format": format})).decode(t, &rec)
			return rec.ID, rec.Checksum, rec.DownloadURL
		}
		id, checksum, download := exportOf("pdf")
		otherID, _, otherURL := exportOf("json")
		if raw := e.do("GET", "/api/v1/exports/"+id, exporterSecret, nil); !strings.Contains(string(raw.body), "&signature=") {
			t.Errorf("the download URL is not written as it is: %s", raw.body)
		}
		u, err := url.Parse(download)
		if err != nil || u.Path != "/api/v1/exports/"+id+"/download" || u.Query().Get("signature") == "" ||
			u.Query().Get("key") != exporter.ID || u.Query().Get("tenant") != "acme" {
			t.Fatalf("download_url %q", download)
		}
		expires, _ := strconv.ParseInt(u.Query().Get("expires"), 10, 64)
		if d := time.Until(time.Unix(expires, 0)); d < 14*time.Minute || d > 16*time.Minute {
			t.Errorf("the URL expires in %v, want 15 minutes", d)
		}

		dl := e.must(200, e.do("GET", download, "", nil))
		if runproof.DigestBytes(dl.body) != checksum || !strings.HasPrefix(dl.header.Get("Content-Type"), "application/pdf") {
			t.Fatalf("signed download: %s, %q", runproof.DigestBytes(dl.body), dl.header.Get("Content-Type"))
		}
		var rec map[string]any
		e.must(200, e.do("GET", "/api/v1/exports/"+id, admin, nil)).decode(t, &rec)
		if rec["delivered_at"] == nil {
			t.Errorf("a signed download was not recorded as the delivery: %v", rec)
		}
		var audit struct {
			Items []runproof.AuditEvent `json:"items"`
		}
		e.must(200, e.do("GET", "/api/v1/logs/audit/access?limit=100", admin, nil)).decode(t, &audit)
		found := false
		for _, ev := range audit.Items {
			found = found || ev.Resource == u.Path && ev.Actor == exporter.ID && strings.Contains(ev.Detail, "signed download URL")
		}
		if !found {
			t.Errorf("no access event of the signed download by the key it was made out to: %+v", audit.Items)
		}

		// An API key still works on the same path, and wins over a query.
		e.must(200, e.do("GET", u.Path+"?signature=nonsense", exporterSecret, nil))

		refused := func(what, path, want string) {
			t.Helper()
			r := e.do("GET", path, "", nil)
			if r.status != 401 {
				t.Errorf("%s: %d, want 401", what, r.status)
				return
			}
			var p problemDoc
			if r.decode(t, &p); !strings.Contains(p.Detail, want) {
				t.Errorf("%s: %s, want it to say %q", what, r.body, want)
			}
		}
		q := u.Query()
		q.Set("signature", strings.Repeat("A", 43))
		refused("another signature", u.Path+"?"+q.Encode(), "not signed by this server")
		q = u.Query()
		q.Set("expires", strconv.FormatInt(expires+3600, 10))
		refused("a later expiry", u.Path+"?"+q.Encode(), "not signed by this server")
		q = u.Query()
		q.Set("key", "someone-else")
		refused("another key", u.Path+"?"+q.Encode(), "not signed by this server")
		refused("another export's path", "/api/v1/exports/"+otherID+"/download?"+u.RawQuery, "not signed by this server")
		q = u.Query()
		q.Del("expires")
		refused("no expiry", u.Path+"?"+q.Encode(), "has no valid expires")

		// A URL the server signed that has expired.
		past := time.Now().Add(-time.Minute).Unix()
		msg := fmt.Appendf(nil, "%s\n%s\n%s\n%d", "acme", exporter.ID, id, past)
		q = u.Query()
		q.Set("expires", strconv.FormatInt(past, 10))
		q.Set("signature", base64.RawURLEncoding.EncodeToString(keys.Active().MAC("runproof signed download URL v1", msg)))
		refused("expired", u.Path+"?"+q.Encode(), "expired at")

		// A rotation keeps the URLs already given out.
		if _, err := keys.Rotate(); err != nil {
			t.Fatal(err)
		}
		e.must(200, e.do("GET", otherURL, "", nil))

		// Revoking the key ends its URLs.
		if _, err := svc.RevokeAPIKey(context.Background(), "acme", exporter.ID); err != nil {
			t.Fatal(err)
		}
		refused("after the key was revoked", download, "was revoked")
	})
}
