package service

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/runproof/runproof/internal/runproof"
)

// A cursor is taken only as ListRuns spells it: one edited by hand (no
// time, another spelling of it, a time out of range) is refused, not read
// as a position that ends the list.
func TestCursor(t *testing.T) {
	c := runproof.RunCursor{StartedAt: time.Date(2026, 12, 7, 10, 0, 0, 123456000, time.UTC), RunID: "run-1"}
	s := encodeCursor(c)
	if got, err := decodeCursor(s); err != nil || got != c {
		t.Fatalf("decodeCursor(encodeCursor(%v)) = %v, %v", c, got, err)
	}
	for _, j := range []string{
		`{"id":"run-1"}`,
		`{"t":"2026-12-07T10:00:00.123456Z"}`,
		`{"t":"2026-12-07T11:00:00.123456+01:00","id":"run-1"}`,
		`{"t":"2026-12-07T10:00:00.1234567Z","id":"run-1"}`,
		`{"t":"2026-12-07T10:00:00.123456Z","id":"run-1","x":1}`,
		`{"id":"run-1","t":"2026-12-07T10:00:00.123456Z"}`,
		`{"t":"9999-12-31T23:59:59-01:00","id":"run-1"}`,
		`{"t":"1999-12-31T23:59:59Z","id":"run-1"}`,
		`{"t":"2026-12-07T10:00:00.123456Z","id":"run 1"}`,
	} {
		if _, err := decodeCursor(base64.RawURLEncoding.EncodeToString([]byte(j))); err == nil {
			t.Errorf("decodeCursor took %s", j)
		}
	}
}
