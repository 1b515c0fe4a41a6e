package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
		e := newSigningEnv(t, store, keys)
		svc := e.svc
		admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
		exporterSecret, exporter, err := svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleExporter})
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
		// The URL is the credential: no cache keeps what it fetched.
		if cc := dl.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("signed download's Cache-Control %q, want no-store", cc)
		}
		if cc := e.do("GET", "/api/v1/exports/"+id, exporterSecret, nil).header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("an export record's Cache-Control %q, want no-store", cc)
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

		// A URL the server signed, but for longer than it gives out.
		later := time.Now().Add(2 * time.Hour).Unix()
		q = u.Query()
		q.Set("expires", strconv.FormatInt(later, 10))
		q.Set("signature", base64.RawURLEncoding.EncodeToString(keys.Active().MAC("runproof signed download URL v1",
			fmt.Appendf(nil, "%s\n%s\n%s\n%d", "acme", exporter.ID, id, later))))
		refused("too long a lifetime", u.Path+"?"+q.Encode(), "expires later than any this server gives out")

		// Answers kept as evidence carry the path alone, no credential.
		for _, path := range []string{"/api/v1/logs/audit/exports", "/api/v1/logs/llm-runs/r-1/export"} {
			r := e.must(200, e.do("GET", path, admin, nil))
			if strings.Contains(string(r.body), "signature=") || !strings.Contains(string(r.body), `"download_url":"/api/v1/exports/`) {
				t.Errorf("%s: %.300s", path, r.body)
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: X-Content-Type-Options %q", path, r.header.Get("X-Content-Type-Options"))
			}
		}

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

// TestSignedURLRetiredKey: a key retired longer ago than a URL lives signs
// no URL that works, while the key retired just now still does; a key
// retires when, after its successor was made, a server starts with
// another key.
func TestSignedURLRetiredKey(t *testing.T) {
	dir := t.TempDir()
	backdate := func(stamp string) {
		t.Helper()
		all, _ := filepath.Glob(filepath.Join(dir, "*.pem"))
		names := slices.DeleteFunc(all, func(n string) bool {
			return strings.HasPrefix(filepath.Base(n), "202001") || strings.HasPrefix(filepath.Base(n), "202101")
		})
		if len(names) != 1 { // the key just made
			t.Fatalf("%d new key files", len(names))
		}
		_, rest, _ := strings.Cut(filepath.Base(names[0]), "-")
		if err := os.Rename(names[0], filepath.Join(dir, stamp+"-"+rest)); err != nil {
			t.Fatal(err)
		}
	}
	old, err := signing.Open(dir) // key A, made "in 2020"
	if err != nil {
		t.Fatal(err)
	}
	backdate("20200101T000000.000000000Z")
	if _, err := old.Rotate(); err != nil { // key B, made "in 2021": A retired then
		t.Fatal(err)
	}
	backdate("20210101T000000.000000000Z")
	startedOnB, err := signing.Open(dir) // a server restarted just now onto B
	if err != nil {
		t.Fatal(err)
	}
	keys, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Rotate(); err != nil { // key C, now: B retired now
		t.Fatal(err)
	}
	ring := keys.Keys()
	store := storetest.OpenSQLite(t)
	// Servers started with A in 2020, and with B early in 2021.
	a2020 := signing.KeyUse{At: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), KeyID: ring[0].ID}
	b2021 := signing.KeyUse{At: time.Date(2021, 2, 1, 0, 0, 0, 0, time.UTC), KeyID: ring[1].ID}
	e := newSigningEnv(t, store, keys, a2020, b2021)
	secret, keyID, inc, exportID := exportToDownload(t, e)
	var rec struct {
		ID string `json:"id"`
	}
	rec.ID = exportID
	signedBy := func(k signing.Key) string { return signedPath(k, keyID, rec.ID) }
	if len(ring) != 3 {
		t.Fatalf("%d keys", len(ring))
	}
	e.must(401, e.do("GET", signedBy(ring[0]), "", nil)) // retired in 2021, when a server started with B
	e.must(200, e.do("GET", signedBy(ring[1]), "", nil)) // retired now, when this server started with C
	e.must(200, e.do("GET", signedBy(ring[2]), "", nil)) // active

	// B was made in 2021, but the server before the restart started with A
	// in 2020 and signed with it until it stopped: A's URLs still work on
	// the server started onto B.
	restarted := newSigningEnv(t, store, startedOnB, a2020)
	restarted.must(201, restarted.do("POST", "/api/v1/exports", secret, map[string]any{"incident_id": inc, "format": "json"})).decode(t, &rec)
	restarted.must(200, restarted.do("GET", signedBy(ring[0]), "", nil))

	// The same with two keys made while it ran (B and C): A's URLs still
	// work on the server started onto C.
	twice := newSigningEnv(t, store, keys, a2020)
	twice.must(201, twice.do("POST", "/api/v1/exports", secret, map[string]any{"incident_id": inc, "format": "json"})).decode(t, &rec)
	twice.must(200, twice.do("GET", signedBy(ring[0]), "", nil))

	// A key given from outside (--signing-key) follows the directory's
	// keys whatever its file's date: C, with which a server started an
	// hour ago, signed until this server started with the outside key.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	outside := signing.Key{ID: signing.KeyID(priv.Public().(ed25519.PublicKey)), Private: priv,
		CreatedAt: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)}
	given, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := given.Use(outside); err != nil {
		t.Fatal(err)
	}
	cHourAgo := signing.KeyUse{At: time.Now().Add(-time.Hour), KeyID: ring[2].ID}
	external := newSigningEnv(t, store, given, a2020, b2021, cHourAgo)
	external.must(201, external.do("POST", "/api/v1/exports", secret, map[string]any{"incident_id": inc, "format": "json"})).decode(t, &rec)
	external.must(200, external.do("GET", signedBy(ring[2]), "", nil))
	external.must(401, external.do("GET", signedBy(ring[0]), "", nil))
}

// TestSignedURLNewerKey: a server that started before another rotated the
// shared signing keys and restarted onto the new one takes the URLs the
// other gives out, signed with a key made after it started.
func TestSignedURLNewerKey(t *testing.T) {
	dir := t.TempDir()
	before, err := signing.Open(dir) // this server's keys: A
	if err != nil {
		t.Fatal(err)
	}
	other, err := signing.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := other.Rotate() // B, made by `keys rotate-signing`
	if err != nil {
		t.Fatal(err)
	}
	if err := other.BeginUse(time.Now()); err != nil { // the other server restarts onto B
		t.Fatal(err)
	}
	store := storetest.OpenSQLite(t)
	e := newSigningEnv(t, store, before, signing.KeyUse{At: time.Now().Add(-time.Hour), KeyID: before.Active().ID})
	_, keyID, _, exportID := exportToDownload(t, e)
	e.must(200, e.do("GET", signedPath(newer, keyID, exportID), "", nil))
}

// exportToDownload makes an exporter key of tenant acme (its secret and
// id), an incident (a stopped run's), and an export of it by that key.
func exportToDownload(t *testing.T, e *env) (secret, keyID, incidentID, exportID string) {
	t.Helper()
	admin, agent := e.key("acme", runproof.RoleAdmin), e.key("acme", runproof.RoleAgent)
	secret, key, err := e.svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleExporter})
	if err != nil {
		t.Fatal(err)
	}
	incidentID = stoppedRun(t, e, admin, agent, "r-1")
	var rec struct {
		ID string `json:"id"`
	}
	e.must(201, e.do("POST", "/api/v1/exports", secret, map[string]any{"incident_id": incidentID, "format": "json"})).decode(t, &rec)
	return secret, key.ID, incidentID, rec.ID
}

// signedPath is a download path of tenant acme's export exportID signed
// with k for API key keyID, as a server signing with k gives it out, for
// ten minutes.
func signedPath(k signing.Key, keyID, exportID string) string {
	expires := time.Now().Add(10 * time.Minute).Unix()
	mac := k.MAC("runproof signed download URL v1", fmt.Appendf(nil, "%s\n%s\n%s\n%d", "acme", keyID, exportID, expires))
	q := url.Values{"tenant": {"acme"}, "key": {keyID}, "expires": {strconv.FormatInt(expires, 10)},
		"signature": {base64.RawURLEncoding.EncodeToString(mac)}}
	return "/api/v1/exports/" + exportID + "/download?" + q.Encode()
}
