package httpapi

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/runproof/runproof/internal/service"
)

// An error a handler returns after its answer began is logged, not
// appended to the answer as a problem.
func TestErrorAfterAnswerBegan(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics()}
	h := s.wrap(route{method: "GET", path: "/x", handle: func(w http.ResponseWriter, c *call) error {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"partial":`)
		return errors.New("the client went away")
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusOK || rec.Body.String() != `{"partial":` {
		t.Errorf("%d %q", rec.Code, rec.Body.String())
	}

	// Before the answer began, the error is the answer.
	h = s.wrap(route{method: "GET", path: "/y", handle: func(w http.ResponseWriter, c *call) error {
		return errors.New("broken")
	}})
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/y", nil))
	if rec.Code != http.StatusInternalServerError || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("%d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
}

// TestReadBodyOneBuffer: a body of known length is read into one buffer of
// about its size, not grown by doubling (a 4 MiB body took 8 MiB).
func TestReadBodyOneBuffer(t *testing.T) {
	body := strings.Repeat("x", service.MaxBodyBytes-10)
	r := httptest.NewRequest("POST", "/", strings.NewReader(body))
	b, err := readBody(&call{r: r})
	if err != nil || string(b) != body {
		t.Fatalf("%d bytes read, %v", len(b), err)
	}
	if cap(b) > len(body)+64<<10 {
		t.Errorf("a body of %d bytes was read into a buffer of %d", len(body), cap(b))
	}
}
