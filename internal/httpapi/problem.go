package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/runproof/runproof/internal/runproof"
)

// statusOf is the one table from domain error codes to HTTP statuses.
var statusOf = map[string]int{
	runproof.EMALFORMED:    http.StatusBadRequest,
	runproof.EUNAUTHORIZED: http.StatusUnauthorized,
	runproof.EFORBIDDEN:    http.StatusForbidden,
	runproof.ENOTFOUND:     http.StatusNotFound,
	runproof.ECONFLICT:     http.StatusConflict,
	runproof.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	runproof.EINVALID:      http.StatusUnprocessableEntity,
	runproof.EINTERNAL:     http.StatusInternalServerError,
	runproof.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	runproof.EUNAVAILABLE:  http.StatusServiceUnavailable,
}

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type          string                `json:"type"`
	Title         string                `json:"title"`
	Status        int                   `json:"status"`
	Detail        string                `json:"detail"`
	Instance      string                `json:"instance,omitempty"`
	Errors        []runproof.FieldError `json:"errors,omitempty"`
	CorrelationID string                `json:"correlation_id,omitempty"`
}

// writeError answers with the problem for err. Internal errors are logged
// with their details and shown as a generic message; a service unavailable
// (the database cannot be reached, the server is stopping) is logged as a
// warning with its cause.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	where := []any{slog.String("path", r.URL.Path), slog.String("correlation_id", correlationID(r.Context()))}
	switch {
	case timedOut(r, err):
		log.WarnContext(r.Context(), "request not done in time", append(where, slog.Any("error", err))...)
		err = runproof.Errorf(runproof.EUNAVAILABLE, "the request was not done in time: the database is slow or does not answer; retry shortly")
	case cut(r, err):
		log.WarnContext(r.Context(), "request cut off", append(where, slog.Any("error", err))...)
		err = runproof.Errorf(runproof.EUNAVAILABLE, "the request was cut off: the server is stopping (or its client went away); retry")
	}
	code := runproof.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError {
		log.ErrorContext(r.Context(), "request failed", append(where, slog.Any("error", err))...)
	}
	if status == http.StatusServiceUnavailable {
		log.WarnContext(r.Context(), "request not served now", append(where, slog.Any("error", err))...)
		w.Header().Set("Retry-After", "30")
	}
	p := newProblem(status, code, runproof.ErrorMessage(err))
	p.Errors = runproof.ErrorFields(err)
	writeProblem(w, r, p)
}

// timedOut reports whether err is a time of the server's own that ran out
// (Options.RequestTimeout): the request's, or that of a long request's
// lookups, while its client still waits. The database is slow or hangs.
func timedOut(r *http.Request, err error) bool {
	if errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		return errors.Is(err, context.DeadlineExceeded) || runproof.ErrorCode(err) == runproof.EINTERNAL
	}
	return r.Context().Err() == nil && errors.Is(err, context.DeadlineExceeded)
}

// cut reports whether err comes of r's context being cancelled: the server
// cuts the requests still running when its stop's grace runs out (serve),
// and a request whose client went away ends so too. Nothing is wrong with
// the request, and it may be sent again.
func cut(r *http.Request, err error) bool {
	return errors.Is(r.Context().Err(), context.Canceled) &&
		(errors.Is(err, context.Canceled) || runproof.ErrorCode(err) == runproof.EINTERNAL)
}

// newProblem is the problem of status, its type named by code.
func newProblem(status int, code, detail string) Problem {
	return Problem{Type: "https://runproof.dev/problems/" + code, Title: http.StatusText(status), Status: status, Detail: detail}
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.Instance = r.URL.EscapedPath() // a URI reference, as RFC 9457 asks: the path as sent
	p.CorrelationID = correlationID(r.Context())
	b, _ := marshal(p) // of strings and numbers only
	writeBody(w, p.Status, "application/problem+json", append(b, '\n'))
}

// writeJSON answers v as JSON with status. It fails only when v cannot be
// encoded, before anything is sent; a write that fails after the status
// line means the client has gone, and there is no one left to tell.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	writeBody(w, status, "application/json", append(b, '\n'))
	return nil
}

// writeBody answers a whole body, the concatenation of parts, its length
// given: the answer is sent before its audit event is written (wrap), and
// without a length it would go out chunked. A failure to write is a
// client that has gone.
func writeBody(w http.ResponseWriter, status int, contentType string, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(status)
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return
		}
	}
}

// marshal is json.Marshal without escaping <, > and & for HTML: answers
// are JSON, and a download URL's & reads as itself.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
