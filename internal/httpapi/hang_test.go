package httpapi_test

import (
	"context"
	"io"
	"net"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/storetest"
)

// freezer is a TCP proxy to a database that can stop passing bytes, as a
// database server that hangs (or a network that drops every packet)
// would, without closing a connection.
type freezer struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	thawed *sync.Cond
	frozen bool
}

func newFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, target: target}
	f.thawed = sync.NewCond(&f.mu)
	t.Cleanup(func() { f.set(false); ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *freezer) set(frozen bool) {
	f.mu.Lock()
	f.frozen = frozen
	f.mu.Unlock()
	f.thawed.Broadcast()
}

func (f *freezer) serve(c net.Conn) {
	defer c.Close()
	d, err := net.Dial("tcp", f.target)
	if err != nil {
		return
	}
	defer d.Close()
	done := make(chan struct{}, 2)
	go func() { f.pipe(d, c); done <- struct{}{} }()
	go func() { f.pipe(c, d); done <- struct{}{} }()
	<-done
}

// pipe copies from src to dst, holding what it read while frozen.
func (f *freezer) pipe(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		f.mu.Lock()
		for f.frozen {
			f.thawed.Wait()
		}
		f.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestNotReady: /readyz says that a database that refuses it cannot be
// reached, not that it is slow.
func TestNotReady(t *testing.T) {
	store := storetest.OpenSQLite(t)
	e := newEnv(t, store)
	store.Close()
	r := e.do("GET", "/readyz", "", nil)
	if r.status != 503 || !strings.Contains(string(r.body), "the database cannot be reached") {
		t.Errorf("/readyz over a closed database: %d %s", r.status, r.body)
	}
}

// TestDatabaseHangs: when PostgreSQL stops answering without closing its
// connections, a request fails with 503 and Retry-After once its time is
// up, /readyz fails within seconds, and both answer again once the
// database does.
func TestDatabaseHangs(t *testing.T) {
	raw := storetest.PostgresURL(t)
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	f := newFreezer(t, u.Host)
	u.Host = f.ln.Addr().String()
	store, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(svc, export.New(store, dir, export.Options{}), httpapi.Options{RequestTimeout: time.Second}))
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL, svc: svc}
	agent, auditor := e.key("acme", runproof.RoleAgent), e.key("acme", runproof.RoleAuditor)
	e.must(201, e.do("POST", "/api/v1/runs", agent, map[string]any{"run_id": "r-1", "agent_id": "bot"}))
	var rec struct {
		ID string `json:"id"`
	}
	e.must(201, e.do("POST", "/api/v1/exports", auditor, map[string]any{"run_id": "r-1", "format": "json"})).decode(t, &rec)

	f.set(true)
	thaw := time.AfterFunc(30*time.Second, func() { f.set(false) }) // a request that waits for the database fails, not hangs
	defer thaw.Stop()
	for _, c := range []struct {
		method, path, key string
		body              any
	}{
		{"GET", "/api/v1/runs/r-1", agent, nil},
		{"GET", "/readyz", "", nil},
		{"GET", "/api/v1/exports/" + rec.ID + "/download", auditor, nil}, // a long route: its lookups are bounded
		{"POST", "/api/v1/exports", auditor, map[string]any{"run_id": "r-1", "format": "json"}},
	} {
		start := time.Now()
		r := e.do(c.method, c.path, c.key, c.body)
		if r.status != 503 || r.header.Get("Retry-After") == "" || strings.Contains(string(r.body), "deadline") {
			t.Errorf("%s %s with the database hanging: status %d, Retry-After %q, %s; want 503 with Retry-After, no internal detail",
				c.method, c.path, r.status, r.header.Get("Retry-After"), r.body)
		}
		if c.path == "/readyz" && !strings.Contains(string(r.body), "does not answer within") {
			t.Errorf("/readyz with the database hanging: %s", r.body)
		}
		t.Logf("%s %s answered %d after %v", c.method, c.path, r.status, time.Since(start).Round(time.Millisecond))
	}
	f.set(false)
	e.must(200, e.do("GET", "/api/v1/runs/r-1", agent, nil))
	e.must(200, e.do("GET", "/readyz", "", nil))
}
