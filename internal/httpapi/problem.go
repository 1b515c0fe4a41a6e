package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"

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
	code := runproof.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status == http.StatusInternalServerError {
		log.ErrorContext(r.Context(), "request failed", slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	if status == http.StatusServiceUnavailable {
		log.WarnContext(r.Context(), "request not served now", slog.String("path", r.URL.Path), slog.Any("error", err))
		w.Header().Set("Retry-After", "30")
	}
	writeProblem(w, r, Problem{
		Type:   "https://runproof.dev/problems/" + code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: runproof.ErrorMessage(err),
		Errors: runproof.ErrorFields(err),
	})
}

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	p.Instance = r.URL.Path
	p.CorrelationID = correlationID(r.Context())
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	b, _ := marshal(p) // of strings and numbers only
	_, _ = w.Write(append(b, '\n'))
}

// writeJSON answers v as JSON with status. It fails only when v cannot be
// encoded, before anything is sent; a write that fails after the status
// line means the client has gone, and there is no one left to tell.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
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
