package httpapi

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// reserveBody waits until n bytes of body may be read, for as long as the
// request may take (at most DefaultRequestTimeout: an export's request has
// no other bound), or c.wait, and returns what gives them back.
//
// The room of a small body (at most smallBody bytes, and as much again for
// what it inflates to when gzipped) is taken from a pool of its own
// (c.small), so that small requests neither queue behind large ones (a
// semaphore serves its waiters in order) nor wait for slow senders of
// large bodies to give theirs back. One tenant takes at most half of
// either pool (shares).
func (c *call) reserveBody(n int64, small bool) (release func(), err error) {
	if n == 0 { // nothing to hold: no need to wait behind those waiting
		return func() {}, nil
	}
	pool := c.bodies
	if small && c.small != nil {
		pool = c.small
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), cmp.Or(c.wait, DefaultRequestTimeout))
	defer cancel()
	release, err = pool.take(ctx, c.tenant(), n)
	if err != nil {
		return nil, runproof.Errorf(runproof.EUNAVAILABLE, "the server is reading too many request bodies at once: retry shortly")
	}
	return release, nil
}

// smallBody is the most a body taking its room from the pool of small
// ones (smallBodies bytes in all) may be, and the most it may inflate to.
const (
	smallBody   = 64 << 10
	smallBodies = 16 << 20
)

// writeTurn waits for the turn of a batch of steps to be written (one of
// Options.Writing at once, half of them at most the tenant's), for two
// thirds of the time the request has left, and at most c.wait: a batch
// that got its turn later would run out of time while it is written, and
// have held the database's writer for nothing. It returns what ends the
// turn.
func (s *Server) writeTurn(c *call) (done func(), err error) {
	ctx := c.r.Context()
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Until(deadline)/3))
		defer cancel()
	}
	if c.wait > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.wait)
		defer cancel()
	}
	done, err = s.writing.take(ctx, c.tenant(), 1)
	if err != nil {
		return nil, runproof.Errorf(runproof.EUNAVAILABLE, "the server is writing too many batches of steps at once: retry shortly")
	}
	return done, nil
}

// bodyFirst is what readRaw sets aside for a body before any of it has
// come; the buffer then grows fourfold as the body fills it, up to the
// length announced, so that memory follows the bytes received, not the
// bytes announced (a client may announce 4 MiB and send a byte a second).
// A small body's room: a body of unknown length holds that room until it
// outgrows its first buffer (room).
const bodyFirst = smallBody

// readBody reads a JSON request body, sent as it is (no content coding);
// advice says what to do with one too large.
func readBody(c *call, advice string) ([]byte, error) {
	if enc := c.r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		return nil, runproof.Errorf(runproof.EUNSUPPORTED, "Content-Encoding %q is not accepted here: send the JSON body as it is (only /v1/traces takes gzip)", enc)
	}
	b, _, err := readRaw(c, advice)
	return b, err
}

// room is the part of the server's budget of bodies that one buffer of a
// request holds until the request ends (c.atEnd), so that the bodies the
// server holds, decoded and waiting for the database's writer, stay within
// the budget. A buffer of unknown final size (a body sent in chunks, as
// OpenTelemetry JS sends every one, or what a gzipped body inflates to)
// holds a small body's room until it outgrows it, then the most a body
// may be.
type room struct {
	c       *call
	grows   bool  // of unknown final size
	base    int64 // what it holds for an earlier buffer of the request (a gzipped body, while it inflates)
	held    int64
	release func()
}

// room returns room for a buffer of a request: of unknown final size when
// grows, else of the size fit is first given.
func (c *call) room(grows bool) *room {
	r := &room{c: c, grows: grows}
	c.atEnd = append(c.atEnd, r.giveBack)
	return r
}

// fit makes the room hold n bytes at least (besides its base), waiting for
// them: a request waits for its room in one piece, never holding some while
// it waits for more.
func (r *room) fit(n int64) error {
	if r.base+n <= r.held {
		return nil
	}
	want, small := n, n <= smallBody && r.base <= smallBody
	if r.grows && n > smallBody {
		want = max(n, int64(service.MaxBodyBytes)+1)
	}
	want += r.base
	// The small room goes back before the wait for the large: held while
	// waiting, it could keep small bodies waiting behind large ones.
	r.giveBack()
	release, err := r.c.reserveBody(want, small)
	if err != nil {
		return err
	}
	r.held, r.release = want, release
	return nil
}

func (r *room) giveBack() {
	if r.release != nil {
		r.release()
		r.held, r.release = 0, nil
	}
}

// readRaw reads a request body as sent, of at most service.MaxBodyBytes
// (an error says so, with advice), holding room for it in the server's
// budget of bodies until the request ends: its length when announced,
// else as room does. It returns the room too, which what the body is
// turned into may grow.
func readRaw(c *call, advice string) ([]byte, *room, error) {
	tooBig := runproof.Errorf(runproof.ETOOLARGE, "the body is over %d bytes (%s)", service.MaxBodyBytes, advice)
	announced := c.r.ContentLength // -1 when unknown
	if announced > service.MaxBodyBytes {
		return nil, nil, tooBig // refused before it is sent
	}
	most := int64(service.MaxBodyBytes) + 1 // one byte over is enough to know
	rm := c.room(announced < 0)
	if announced >= 0 {
		most = announced + 1 // room to read the end without growing
		if err := rm.fit(most); err != nil {
			return nil, nil, err
		}
	}
	buf, err := fill(http.MaxBytesReader(nil, c.r.Body, service.MaxBodyBytes), most, rm)
	var overMax *http.MaxBytesError
	var noRoom *runproof.Error
	slow := errors.Is(c.r.Context().Err(), context.DeadlineExceeded) // the body was closed on the request's end
	switch {
	case err == nil && slow:
		return nil, nil, runproof.Errorf(runproof.EMALFORMED, "the body arrived too slowly: the request's time ran out before it was read; send it faster, or in smaller calls")
	case err == nil && int64(len(buf)) == most && announced >= 0: // more than announced: the reader let it through
		return nil, nil, runproof.Errorf(runproof.EMALFORMED, "the body is longer than its Content-Length")
	case err == nil:
		return buf, rm, nil
	case errors.As(err, &noRoom):
		return nil, nil, err
	case errors.As(err, &overMax):
		return nil, nil, tooBig
	case errors.Is(err, io.ErrUnexpectedEOF):
		return nil, nil, runproof.Errorf(runproof.EMALFORMED, "the body was cut short: it ended before its Content-Length, or its last chunk")
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, nil, runproof.Errorf(runproof.EMALFORMED, "the body did not arrive within the server's read timeout: is it shorter than its Content-Length?")
	}
	return nil, nil, runproof.Errorf(runproof.EMALFORMED, "the body could not be read: the connection failed while it was sent")
}

// fill reads r to its end, or to most bytes, into a buffer that starts at
// bodyFirst and grows fourfold as it fills, rm holding room for it.
func fill(r io.Reader, most int64, rm *room) ([]byte, error) {
	buf := make([]byte, 0, min(most, bodyFirst))
	if err := rm.fit(int64(cap(buf))); err != nil {
		return nil, err
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= most {
				return buf, nil
			}
			size := min(int64(cap(buf))*4, most)
			if err := rm.fit(size); err != nil {
				return nil, err
			}
			buf = slices.Grow(buf, int(size)-len(buf))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		switch {
		case errors.Is(err, io.EOF):
			return buf, nil
		case err != nil:
			return nil, err
		}
	}
}

// decodeBody reads and strictly decodes a JSON body into v. An empty body
// is accepted when allowEmpty, leaving v as it is.
func decodeBody(c *call, v any, allowEmpty bool) error {
	b, err := readBody(c, "this call's body is a few fields: check what is sent")
	if err != nil {
		return err
	}
	if allowEmpty && len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	return service.DecodeJSON(b, v)
}
