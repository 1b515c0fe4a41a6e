// Package benchenv is what the benchmark programs share: scratch stores, a
// runproof API server over a store, and the median of rounds.
package benchenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/httpapi"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/postgres"
	"github.com/runproof/runproof/internal/store/sqlite"
)

// Median returns the middle value of xs (the upper one of an even count).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// SQLite opens a migrated store in a new file under a temporary directory,
// returning the file's path and a function that closes and removes it.
func SQLite(ctx context.Context) (*sqlite.Store, string, func(), error) {
	dir, err := os.MkdirTemp("", "runproof-bench-")
	if err != nil {
		return nil, "", nil, err
	}
	path := filepath.Join(dir, "runproof.db")
	st, err := sqlite.Open(ctx, path)
	if err == nil {
		err = st.Migrate(ctx)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	return st, path, func() { st.Close(); os.RemoveAll(dir) }, nil
}

// Postgres opens a migrated store in a new schema of the database at
// pgURL, returning the URL that selects the schema and a function that
// closes the store and drops the schema.
func Postgres(ctx context.Context, pgURL string) (*postgres.Store, string, func(), error) {
	schema := "rp_bench_" + strings.ToLower(rand.Text()[:8])
	admin, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return nil, "", nil, err
	}
	drop := func() {
		admin.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		admin.Close(context.Background())
	}
	u, err := url.Parse(pgURL)
	if err == nil {
		_, err = admin.Exec(ctx, "CREATE SCHEMA "+schema)
	}
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	// pgx passes unknown parameters as settings: every connection starts
	// with the schema first in its search path.
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(ctx, u.String())
	if err != nil {
		drop()
		return nil, "", nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		drop()
		return nil, "", nil, err
	}
	return st, u.String(), func() { st.Close(); drop() }, nil
}

// Server is runproof's HTTP API on a loopback port over a store, with an
// agent key and the benchmark's policies in tenant "bench".
type Server struct {
	URL string
	Key string // an agent key of tenant "bench"
	srv *httptest.Server
	dir string
}

// Tenant is the tenant the benchmarks write to.
const Tenant = "bench"

// NewServer starts the API over store. Its policies are a cost limit
// (stop) of 10 cents a step and a token limit (warn) of 1000 tokens a step
// for runs of n steps: judged on every step, never reached.
func NewServer(ctx context.Context, store runproof.Store, n int) (*Server, error) {
	svc := service.New(store, service.Options{})
	dir, err := os.MkdirTemp("", "runproof-bench-artifacts-")
	if err != nil {
		return nil, err
	}
	arts, err := artifact.NewDir(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{dir: dir,
		srv: httptest.NewServer(httpapi.New(svc, export.New(store, arts, export.Options{}), httpapi.Options{}))}
	s.URL = s.srv.URL
	if s.Key, _, err = svc.CreateAPIKey(ctx, Tenant, service.KeyInput{Role: runproof.RoleAgent, Name: "bench"}); err != nil {
		s.Close()
		return nil, err
	}
	for _, p := range []service.PolicyInput{
		{Name: "cost", Type: runproof.PolicyCostLimit, Threshold: service.Threshold(fmt.Sprint(n * 10)), Action: runproof.ActionStop},
		{Name: "tokens", Type: runproof.PolicyTokenLimit, Threshold: service.Threshold(fmt.Sprint(n * 1000)), Action: runproof.ActionWarn},
	} {
		if _, err := svc.CreatePolicies(ctx, Tenant, p); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// Close stops the server and removes its artifacts.
func (s *Server) Close() {
	s.srv.Close()
	os.RemoveAll(s.dir)
}

// Post sends body to path with the agent key and returns the answer's
// body; any status from 300 up is an error.
func (s *Server) Post(ctx context.Context, path, contentType string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.URL+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.Key)
	req.Header.Set("Content-Type", contentType)
	res, err := s.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return nil, fmt.Errorf("%s: %d %s", path, res.StatusCode, out)
	}
	return out, err
}
