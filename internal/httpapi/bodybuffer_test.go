package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/artifact"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
	"github.com/runproof/runproof/internal/store/storetest"
)

// TestBodyBuffer: a body being read holds its announced size of the
// server's body buffer, however slowly it comes; a body that does not fit
// waits, and gets 503 when its request's time runs out first, while a
// small one is read from its own pool. Once the slow one is gone, bodies
// are read again.
func TestBodyBuffer(t *testing.T) {
	store := storetest.OpenSQLite(t)
	svc := service.New(store, service.Options{})
	dir, err := artifact.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := New(svc, export.New(store, dir, export.Options{}), Options{BodyBuffer: 100_000, RequestTimeout: time.Second})
	srv := httptest.NewServer(s)
	defer srv.Close()
	key, _, err := svc.CreateAPIKey(context.Background(), "acme", service.KeyInput{Role: runproof.RoleAgent})
	if err != nil {
		t.Fatal(err)
	}

	// A client announcing 80 000 bytes, sending ten.
	slow, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /api/v1/runs HTTP/1.1\r\nHost: runproof\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: 80000\r\n\r\n{\"run_id\":", key)
	for deadline := time.Now().Add(10 * time.Second); s.bodies.all.TryAcquire(30_000); { // until it holds its 80 000
		s.bodies.all.Release(30_000)
		if time.Now().After(deadline) {
			t.Fatal("the slow body never took its room in the buffer")
		}
		time.Sleep(10 * time.Millisecond)
	}

	post := func(size int) int {
		t.Helper()
		req, err := http.NewRequest("POST", srv.URL+"/api/v1/runs", strings.NewReader(`{"agent_id":"`+strings.Repeat("a", size)+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	large := make(chan int, 1)
	go func() { large <- post(70_000) }()
	time.Sleep(100 * time.Millisecond) // it waits for room, until its request's second runs out
	if got := post(1_000); got == http.StatusServiceUnavailable {
		t.Errorf("a 1 000-byte body while a large one waits for room: %d, want it read from the pool of small bodies", got)
	}
	s.bodies.mu.Lock()
	waits := s.bodies.tenants["acme"] != nil && s.bodies.tenants["acme"].users == 2 // the slow body and the large one
	s.bodies.mu.Unlock()
	if !waits {
		t.Error("a 1 000-byte body was answered only once a large one waiting before it had given up")
	}
	if got := <-large; got != http.StatusServiceUnavailable {
		t.Errorf("a 70 000-byte body while 80 000 of 100 000 are held: %d, want 503", got)
	}
	slow.Close()
	for deadline := time.Now().Add(10 * time.Second); !s.bodies.all.TryAcquire(100_000); { // the slow body given up
		if time.Now().After(deadline) {
			t.Fatal("the slow body's room was never given back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.bodies.all.Release(100_000)
	if got := post(70_000); got == http.StatusServiceUnavailable {
		t.Errorf("a 70 000-byte body once the slow one is gone: %d", got)
	}
}

// TestGzipBodyBuffer: a gzipped OTLP body holds, besides its compressed
// size, room for what it inflates to as that grows, until the request
// ends.
func TestGzipBodyBuffer(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(make([]byte, service.MaxBodyBytes)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	both := int64(z.Len()+1) + service.MaxBodyBytes + 1 // compressed, and inflated
	read := func(budget int64) (*call, int) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/traces", bytes.NewReader(z.Bytes()))
		r.Header.Set("Content-Encoding", "gzip")
		c := &call{r: r, bodies: newShares(budget, budget)}
		b, status, msg := readOTLPBody(c)
		if status == 0 && len(b) != service.MaxBodyBytes {
			t.Errorf("%d bytes read, want %d (%s)", len(b), service.MaxBodyBytes, msg)
		}
		return c, status
	}
	if _, status := read(int64(z.Len()) * 100); status != http.StatusServiceUnavailable {
		t.Errorf("a gzipped body of %d bytes under a budget of %d: status %d, want 503", z.Len(), z.Len()*100, status)
	}
	c, status := read(both)
	if status != 0 {
		t.Fatalf("a gzipped body under a budget of its size and the most a body may be: status %d", status)
	}
	if c.bodies.all.TryAcquire(int64(z.Len())) {
		t.Error("the budget is free before the request ended")
	}
	for _, f := range c.atEnd {
		f()
	}
	if !c.bodies.all.TryAcquire(both) {
		t.Error("the budget is not free once the request ended")
	}
}

// TestGzipRoomInOnePiece: a gzipped body waits for the room of what it
// inflates to together with its own, never holding one while it waits for
// the other: two such bodies under a budget that holds either whole are
// served one after the other, not both left waiting.
func TestGzipRoomInOnePiece(t *testing.T) {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	junk := make([]byte, 200<<10)
	for i := range junk {
		junk[i] = byte(i * 7919 >> 3) // compresses little: a raw body over a small one's room
	}
	zw.Write(junk)
	zw.Close()
	size := int64(z.Len()) + service.MaxBodyBytes + 1
	budget := newShares(size, size)
	statuses := make(chan int, 2)
	for range 2 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r := httptest.NewRequestWithContext(ctx, "POST", "/v1/traces", io.MultiReader(bytes.NewReader(z.Bytes())))
			r.ContentLength = -1
			r.Header.Set("Content-Encoding", "gzip")
			c := &call{r: r, bodies: budget, wait: 2 * time.Second}
			_, status, _ := readOTLPBody(c)
			for _, f := range c.atEnd {
				f()
			}
			statuses <- status
		}()
	}
	for range 2 {
		if status := <-statuses; status != 0 {
			t.Errorf("status %d: a body waited while another held part of its room", status)
		}
	}
}

// TestChunkedBodyBuffer: a body of unknown length (chunked, as
// OpenTelemetry JS sends every one) holds a small body's room while it is
// small, also once gzip inflates it, and the most a body may be only once
// it outgrows that.
func TestChunkedBodyBuffer(t *testing.T) {
	read := func(body []byte, gzipped bool) (*call, int, string) {
		if gzipped {
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(body)
			zw.Close()
			body = z.Bytes()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r := httptest.NewRequestWithContext(ctx, "POST", "/v1/traces", io.MultiReader(bytes.NewReader(body))) // no length
		r.ContentLength = -1
		if gzipped {
			r.Header.Set("Content-Encoding", "gzip")
		}
		c := &call{r: r, bodies: newShares(1, 1), small: newShares(smallBodies, smallBodies)} // no room for large bodies
		_, status, msg := readOTLPBody(c)
		return c, status, msg
	}
	for _, gzipped := range []bool{false, true} {
		c, status, msg := read(make([]byte, 40<<10), gzipped)
		if status != 0 {
			t.Errorf("a small chunked body (gzip %v): status %d, %s", gzipped, status, msg)
		}
		if c.small.all.TryAcquire(smallBodies) || !c.small.all.TryAcquire(smallBodies-2*smallBody) {
			t.Errorf("a small chunked body (gzip %v) holds no small room, or more than two", gzipped)
		}
		if _, status, _ := read(make([]byte, 1<<20), gzipped); status != http.StatusServiceUnavailable {
			t.Errorf("a chunked body of 1 MiB (gzip %v) without room for large bodies: status %d, want 503", gzipped, status)
		}
	}
}

// TestBodyHeldWhileHandled: a body's room in the budget is held while its
// request is handled (decoded, waiting for the database's writer), not
// only while it is read, and given back when the handler returns.
func TestBodyHeldWhileHandled(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler), bodies: newShares(1000, 1000),
		metrics: newMetrics(newAuditRetry(nil, slog.New(slog.DiscardHandler)), nil, nil)}
	freeInHandler := true
	h := s.wrap(route{method: "POST", path: "/x", handle: func(w http.ResponseWriter, c *call) error {
		if _, err := readBody(c, "send less"); err != nil {
			return err
		}
		freeInHandler = s.bodies.all.TryAcquire(1000)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/x", strings.NewReader(`{"a":1}`)))
	if rec.Code != http.StatusNoContent || freeInHandler {
		t.Errorf("%d; the whole budget free while the body was handled: %v", rec.Code, freeInHandler)
	}
	if !s.bodies.all.TryAcquire(1000) {
		t.Error("the body's room was not given back once its request ended")
	}
}
