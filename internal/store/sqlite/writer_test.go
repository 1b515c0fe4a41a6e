package sqlite

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLine: the writer goes to urgent writes first, then to the others in
// the order they came; a write that stops waiting leaves the line.
func TestLine(t *testing.T) {
	var l line
	ctx := context.Background()
	if err := l.enter(ctx, ordinary); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	waiting := func(ln lane) int {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.waiting[ln].Len()
	}
	queue := func(name string, ln lane, ctx context.Context) {
		before := waiting(ln)
		go func() {
			if err := l.enter(ctx, ln); err != nil {
				got <- name + " gave up"
				return
			}
			got <- name
		}()
		for waiting(ln) == before { // until it waits
			time.Sleep(time.Millisecond)
		}
	}
	gone, cancel := context.WithCancel(ctx)
	queue("first", ordinary, ctx)
	queue("impatient", ordinary, gone)
	queue("second", ordinary, ctx)
	queue("audit", urgent, ctx)
	cancel()
	if g := <-got; g != "impatient gave up" {
		t.Fatalf("%s, want the cancelled write to give up", g)
	}
	for _, want := range []string{"audit", "first", "second"} {
		l.leave()
		if g := <-got; g != want {
			t.Fatalf("the writer went to %s, want %s", g, want)
		}
	}
	l.leave()
	if l.mu.Lock(); l.held {
		t.Error("the writer is held with no one waiting")
	}
	l.mu.Unlock()
	if err := l.enter(ctx, ordinary); err != nil {
		t.Fatal(err)
	}
	done, stop := context.WithTimeout(ctx, 10*time.Millisecond)
	defer stop()
	if err := l.enter(done, urgent); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting past its deadline: %v", err)
	}
}
