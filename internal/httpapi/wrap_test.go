package httpapi

import (
	"bytes"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// An error a handler returns after its answer began is logged, not
// appended to the answer as a problem.
func TestErrorAfterAnswerBegan(t *testing.T) {
	s := &Server{log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: newMetrics(newAuditRetry(nil, slog.New(slog.DiscardHandler)), nil, nil)}
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

// firstRead records the size of the first read from a body.
type firstRead struct {
	io.Reader
	size int
}

func (f *firstRead) Read(p []byte) (int, error) {
	if f.size == 0 {
		f.size = len(p)
	}
	return f.Reader.Read(p)
}

// TestReadBodyGrowsAsItArrives: a small body of known length is read into
// one buffer of its size; a large one into a buffer that starts at
// bodyFirst and grows as the body arrives, so that one announced large but
// cut short holds little memory.
func TestReadBodyGrowsAsItArrives(t *testing.T) {
	for _, size := range []int{0, 1, bodyFirst - 10, bodyFirst, service.MaxBodyBytes - 10, service.MaxBodyBytes} {
		body := strings.Repeat("x", size)
		src := &firstRead{Reader: strings.NewReader(body)}
		r := httptest.NewRequest("POST", "/", src)
		r.ContentLength = int64(size)
		b, err := readBody(&call{r: r, bodies: newShares(DefaultBodyBuffer, DefaultBodyBuffer)}, "send less")
		if err != nil || string(b) != body {
			t.Fatalf("%d bytes: %d read, %v", size, len(b), err)
		}
		if want := min(size+1, bodyFirst); src.size != want {
			t.Errorf("a body of %d bytes was first read %d bytes at a time, want %d", size, src.size, want)
		}
	}

	// Announced at the most, cut short after 100 bytes.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 100)), iotest.ErrReader(io.ErrUnexpectedEOF)))
	r.ContentLength = service.MaxBodyBytes
	_, err := readBody(&call{r: r, bodies: newShares(DefaultBodyBuffer, DefaultBodyBuffer)}, "send less")
	runtime.ReadMemStats(&after)
	if runproof.ErrorCode(err) != runproof.EMALFORMED {
		t.Errorf("a body cut short: %v", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4*bodyFirst {
		t.Errorf("a body cut short after 100 bytes allocated %d bytes", got)
	}

	// Longer than announced, which the server's reader would have cut.
	r = httptest.NewRequest("POST", "/", strings.NewReader("123456"))
	r.ContentLength = 2
	if _, err := readBody(&call{r: r, bodies: newShares(DefaultBodyBuffer, DefaultBodyBuffer)}, "send less"); runproof.ErrorCode(err) != runproof.EMALFORMED || !strings.Contains(err.Error(), "longer than its Content-Length") {
		t.Errorf("a body longer than announced: %v", err)
	}
	// Whole, but after the request's time ran out: the client's slowness,
	// not the database's.
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	r = httptest.NewRequestWithContext(ctx, "POST", "/", strings.NewReader(`{"a":1}`))
	if _, err := readBody(&call{r: r, bodies: newShares(DefaultBodyBuffer, DefaultBodyBuffer)}, "send less"); runproof.ErrorCode(err) != runproof.EMALFORMED || !strings.Contains(err.Error(), "too slowly") {
		t.Errorf("a body that came too slowly: %v", err)
	}

	// Over the most, of unknown length.
	r = httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", service.MaxBodyBytes+1)))
	r.ContentLength = -1
	if _, err := readBody(&call{r: r, bodies: newShares(DefaultBodyBuffer, DefaultBodyBuffer)}, "send less"); runproof.ErrorCode(err) != runproof.ETOOLARGE {
		t.Errorf("a body over the most: %v", err)
	}
}

// TestInterruptedExportAnswer: an export cut by a stopping server is a 503
// to retry, saying so (once), not an internal error. A 503 is logged as a
// warning, with its cause.
func TestInterruptedExportAnswer(t *testing.T) {
	rec := runproof.Export{ExportRequest: runproof.ExportRequest{ID: "x1"}, Status: runproof.ExportFailed,
		FailureReason: "it was interrupted: the request was cancelled or the process stopped before it was done"}
	err := exportError(&export.Failed{Export: rec, Err: fmt.Errorf("render: %w", context.Canceled)})
	w := httptest.NewRecorder()
	var logged bytes.Buffer
	writeError(w, httptest.NewRequest("POST", "/api/v1/exports", nil), slog.New(slog.NewTextHandler(&logged, nil)), err)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
		!strings.Contains(w.Body.String(), `"detail":"export x1 was interrupted and is recorded as failed: ask again"`) {
		t.Errorf("%d %v %s", w.Code, w.Header(), w.Body)
	}
	if l := logged.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "x1 was interrupted") {
		t.Errorf("logged %q, want a warning", l)
	}
	// A database that cannot be reached: the driver's error is logged.
	logged.Reset()
	w = httptest.NewRecorder()
	writeError(w, httptest.NewRequest("GET", "/api/v1/runs", nil), slog.New(slog.NewTextHandler(&logged, nil)), fmt.Errorf("list runs: %w", driver.ErrBadConn))
	if l := logged.String(); w.Code != http.StatusServiceUnavailable || !strings.Contains(l, "level=WARN") || !strings.Contains(l, "list runs: driver: bad connection") {
		t.Errorf("%d, logged %q, want a warning with the cause", w.Code, l)
	}
}

// TestCutRequestIsUnavailable: a request cut off by its context (the
// server stopping, after its grace) answers 503 with Retry-After, not 500,
// and the log names its correlation id.
func TestCutRequestIsUnavailable(t *testing.T) {
	var log bytes.Buffer
	s := &Server{log: slog.New(slog.NewTextHandler(&log, nil)), metrics: newMetrics(newAuditRetry(nil, slog.New(slog.DiscardHandler)), nil, nil)}
	for _, failure := range []error{context.Canceled, fmt.Errorf("list runs: %w", context.Canceled), errors.New("driver: bad connection after cancel")} {
		log.Reset()
		ctx, cancel := context.WithCancel(context.Background())
		h := s.wrap(route{method: "GET", path: "/x", handle: func(w http.ResponseWriter, c *call) error {
			cancel() // the server cuts it while it runs
			return failure
		}})
		rec := httptest.NewRecorder()
		ctx = context.WithValue(ctx, correlationKey{}, "corr-42")
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), "the server is stopping") {
			t.Errorf("%v: %d %q", failure, rec.Code, rec.Body.String())
		}
		if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "correlation_id=corr-42") ||
			!strings.Contains(log.String(), failure.Error()) {
			t.Errorf("%v: logged %q, want the failure as it was", failure, log.String())
		}
	}
}

// TestIncidentExportBodyCarried: every member of an incident export's
// body reaches the export request, under the same name, so that a member
// added to the body is not dropped on the way.
func TestIncidentExportBodyCarried(t *testing.T) {
	var d incidentExportBody
	v := reflect.ValueOf(&d).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x" + strconv.Itoa(i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Pointer:
			f.Set(reflect.New(f.Type().Elem()))
		default:
			t.Fatalf("field %s: set it here", v.Type().Field(i).Name)
		}
	}
	in := reflect.ValueOf(d.input(runproof.BundleEvidence, "inc-1"))
	byName := map[string]reflect.Value{}
	for i := range in.NumField() {
		name, _, _ := strings.Cut(in.Type().Field(i).Tag.Get("json"), ",")
		byName[name] = in.Field(i)
	}
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		if got, ok := byName[name]; !ok || !reflect.DeepEqual(got.Interface(), v.Field(i).Interface()) {
			t.Errorf("member %s: the export request has %v, want %v", name, got, v.Field(i))
		}
	}
}
