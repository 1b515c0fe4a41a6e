package httpapi

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// query reads a request's query parameters and gathers every one at
// fault, so that one answer names them all (err). checkQuery has refused
// parameters the route does not take, and any given twice.
type query struct {
	get      func(string) string
	errs     runproof.Fields
	maxLimit int // the route's
}

func newQuery(c *call) *query { return &query{get: c.r.URL.Query().Get, maxLimit: c.maxLimit} }

// err returns the parameters at fault, nil if none.
func (q *query) err() error { return q.errs.Err() }

// str returns a parameter as it is, "" when absent.
func (q *query) str(name string) string { return q.get(name) }

// oneOf returns a filter, which when given must be one of values.
func (q *query) oneOf(name string, values []string) string {
	v := q.get(name)
	if v != "" && !slices.Contains(values, v) {
		q.errs.Add(name, "must be %s or %s", strings.Join(values[:len(values)-1], ", "), values[len(values)-1])
	}
	return v
}

// whole returns a parameter that must be a whole number written in
// digits, from least to most; ok is false when it is absent or at fault.
func (q *query) whole(name string, least, most int64, must string) (n int64, ok bool) {
	v := q.get(name)
	if v == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || strings.TrimLeft(v, "0123456789") != "" || n < least || n > most {
		q.errs.Add(name, "%s", must)
		return 0, false
	}
	return n, true
}

// count returns a whole number, 0 or more (0 when absent).
func (q *query) count(name string) int64 {
	n, _ := q.whole(name, 0, math.MaxInt64, "must be a whole number, 0 or more")
	return n
}

// limit returns limit, from 1 to the route's most (0 when absent: the
// default).
func (q *query) limit() int {
	n, _ := q.whole("limit", 1, int64(q.maxLimit), fmt.Sprintf("must be a whole number from 1 to %d", q.maxLimit))
	return int(n)
}

// page returns limit (service.DefaultPage when absent) and offset.
func (q *query) page() (limit, offset int) {
	return cmp.Or(q.limit(), service.DefaultPage), int(q.count("offset"))
}

// period returns from and to, RFC 3339 timestamps with from before to;
// zero when absent.
func (q *query) period() (from, to time.Time) {
	from, to = q.time("from"), q.time("to")
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		q.errs.Add("to", "must be after from")
	}
	return from, to
}

// time returns the RFC 3339 timestamp of the parameter name, zero when
// absent.
func (q *query) time(name string) time.Time {
	v := q.get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := runproof.ParseTime(v)
	switch {
	case err != nil && strings.Contains(v, " "):
		q.errs.Add(name, "must be an RFC 3339 timestamp (a + in it must be sent as %%2B: a bare + in a query reads as a space)")
	case err != nil:
		q.errs.Add(name, "must be an RFC 3339 timestamp")
	}
	return t
}
