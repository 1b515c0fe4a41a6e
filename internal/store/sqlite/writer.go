package sqlite

import (
	"container/list"
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// SQLite has one writer at a time, and this process writes through one
// connection. Its writes wait for that connection here, in order, rather
// than in database/sql's pool, which hands a freed connection to a waiter
// chosen at random: behind a flood of large step batches, an audit event
// could wait many of them out. Audit events go first: every request
// answered waits for its event to be stored.

// lane is a write's place in the line.
type lane int

const (
	urgent   lane = iota // audit events
	ordinary             // everything else
)

// line lets writes take the writer connection one at a time: urgent ones
// first, each lane in order of arrival.
type line struct {
	mu      sync.Mutex
	held    bool
	waiting [2]list.List // of chan struct{}, by lane
}

// enter waits for the writer's turn, or for ctx to end.
func (l *line) enter(ctx context.Context, ln lane) error {
	l.mu.Lock()
	if !l.held {
		l.held = true
		l.mu.Unlock()
		return nil
	}
	turn := make(chan struct{})
	e := l.waiting[ln].PushBack(turn)
	l.mu.Unlock()
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		select {
		case <-turn: // given the turn meanwhile: pass it on
			l.mu.Unlock()
			l.leave()
		default:
			l.waiting[ln].Remove(e)
			l.mu.Unlock()
		}
		return ctx.Err()
	}
}

// leave gives the turn to the first waiter of the first lane that has one.
func (l *line) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.waiting {
		if e := l.waiting[i].Front(); e != nil {
			l.waiting[i].Remove(e)
			close(e.Value.(chan struct{}))
			return
		}
	}
	l.held = false
}

// writeConn is the writer connection, held by one write until Close.
type writeConn struct {
	*sql.Conn
	line *line
}

// Close gives the connection to the next write in line.
func (c writeConn) Close() error {
	err := c.Conn.Close()
	c.line.leave()
	return err
}

// writer waits for the writer connection in lane ln; what names the write
// in an error.
func (s *Store) writer(ctx context.Context, ln lane, what string) (writeConn, error) {
	if err := s.line.enter(ctx, ln); err != nil {
		return writeConn{}, fmt.Errorf("%s: %w", what, err)
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		s.line.leave()
		return writeConn{}, fmt.Errorf("%s: %w", what, err)
	}
	return writeConn{Conn: conn, line: &s.line}, nil
}
