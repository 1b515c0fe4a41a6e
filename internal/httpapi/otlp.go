package httpapi

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/runproof/runproof/internal/otlp"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// POST /v1/traces speaks OTLP/HTTP (opentelemetry-proto, "OTLP/HTTP" in the
// OTLP specification): answers and errors are OTLP messages in the encoding
// of the request, not problem+json. docs/otel.md describes the mapping.

// otlpFormat is one of the two encodings of OTLP/HTTP.
type otlpFormat struct {
	contentType string
	decode      func([]byte) (*coltracepb.ExportTraceServiceRequest, error)
	marshal     func(proto.Message) ([]byte, error)
}

var (
	otlpProtobuf = otlpFormat{"application/x-protobuf", otlp.DecodeProto, proto.Marshal}
	otlpJSON     = otlpFormat{"application/json", otlp.DecodeJSON, protojson.Marshal}
)

// otlpFormatOf picks the encoding from the Content-Type; false when it
// names neither.
func otlpFormatOf(contentType string) (otlpFormat, bool) {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case otlpProtobuf.contentType:
		return otlpProtobuf, true
	case otlpJSON.contentType:
		return otlpJSON, true
	}
	return otlpProtobuf, false // neither encoding was asked for: protobuf is OTLP's default
}

// Exporters give an export 10 s (the SDKs) or 5 s (the Collector), their
// retries included, and drop the batch once that time is spent: an OTLP
// export waits at most otlpWait for room for its body and for its turn to
// be written, and is answered within otlpTime of its body's arrival, 503
// when its spans could not all be stored by then (those stored are
// recognised on the retry).
// An answer after the exporter's time would be lost.
const (
	otlpWait = 3 * time.Second
	otlpTime = 9 * time.Second
)

func (s *Server) otlpTraces(w http.ResponseWriter, c *call) error {
	c.wait = otlpWait
	format, ok := otlpFormatOf(c.r.Header.Get("Content-Type"))
	if !ok {
		writeOTLPStatus(w, format, http.StatusUnsupportedMediaType,
			fmt.Sprintf("Content-Type %q is not supported: send application/x-protobuf or application/json", c.r.Header.Get("Content-Type")))
		return nil
	}
	body, status, msg := readOTLPBody(c)
	if status == http.StatusServiceUnavailable {
		s.log.WarnContext(c.r.Context(), "OTLP spans not stored now", slog.String("error", msg))
	}
	if status != 0 {
		writeOTLPStatus(w, format, status, msg)
		return nil
	}
	// From its body's arrival, which the network paces, not runproof.
	ctx, cancel := context.WithTimeout(c.r.Context(), otlpTime)
	defer cancel()
	c.r = c.r.WithContext(ctx)
	done, err := s.writeTurn(c) // before decoding: a batch waiting its turn holds only its body
	if err != nil {
		s.log.WarnContext(c.r.Context(), "OTLP spans not stored now", slog.Any("error", err))
		writeOTLPStatus(w, format, http.StatusServiceUnavailable, runproof.ErrorMessage(err))
		return nil
	}
	defer done()
	req, err := format.decode(body)
	if tooLarge := (*otlp.TooLargeError)(nil); errors.As(err, &tooLarge) {
		writeOTLPStatus(w, format, http.StatusRequestEntityTooLarge, err.Error())
		return nil
	} else if err != nil {
		writeOTLPStatus(w, format, http.StatusBadRequest, err.Error())
		return nil
	}
	mapped := otlp.Map(req, otlp.Options{Now: s.svc.Now(), Prices: s.prices})
	rejected := mapped.Rejected
	var notes []string
	results, err := s.svc.IngestRuns(c.r.Context(), c.tenant(), mapped.Runs)
	for _, res := range results { // counted even when others were not stored: a retry finds these re-sent
		for _, st := range res.Steps {
			if !st.Resent {
				s.metrics.steps.WithLabelValues(string(st.Status)).Inc()
			}
		}
	}
	if err != nil {
		switch {
		case cut(c.r, err) || timedOut(c.r, err): // as writeError tells them: nothing is wrong here
			s.log.WarnContext(c.r.Context(), "OTLP spans not stored: the request was cut off or not done in time", slog.Any("error", err))
		default:
			s.log.ErrorContext(c.r.Context(), "OTLP spans not stored", slog.Any("error", err))
		}
		// Retryable: spans stored before the failure are recognised
		// as re-sent when the exporter retries.
		writeOTLPStatus(w, format, http.StatusServiceUnavailable, "the spans could not be stored now: retry later")
		return nil
	}
	for _, res := range results {
		rejected = append(rejected, res.Rejected...)
		if res.Decision == service.AgentStop {
			s.metrics.stops.Inc()
			notes = append(notes, fmt.Sprintf("run %s is stopped by a policy (incident %s): stop the agent; its status is at GET /api/v1/runs/%s",
				res.RunID, res.IncidentID, res.RunID))
		}
	}
	if note := unpricedNote(mapped.Unpriced); note != "" {
		// A cost limit does not see these tokens: the exporter hears of
		// it (a warning, in partial_success with no span rejected), and
		// so does the operator.
		notes = append(notes, note)
		s.log.WarnContext(c.r.Context(), "OTLP spans of no known cost", slog.String("tenant", c.tenant()), slog.String("detail", note))
	}
	if ignored := storedOnly(mapped.Ignored, rejected); len(ignored) > 0 {
		// Stored all the same, the value counted as absent: the exporter
		// and the operator hear of it.
		note := "attributes that could not be read, counted as absent (the spans are stored): " + listed(ignored)
		notes = append(notes, note)
		s.log.WarnContext(c.r.Context(), "OTLP span attributes ignored", slog.String("tenant", c.tenant()),
			slog.String("trace_id", ignored[0].TraceID), slog.String("detail", note))
	}
	if len(rejected) > 0 {
		// The exporter is told, but may only log it where no one looks
		// (OpenTelemetry JS's diagnostic logger, silent by default).
		s.metrics.rejected.Add(float64(len(rejected)))
		s.log.WarnContext(c.r.Context(), "OTLP spans rejected", slog.String("tenant", c.tenant()), slog.Int("rejected", len(rejected)),
			slog.String("trace_id", rejected[0].TraceID), slog.String("first", rejected[0].String()))
	}
	out := &coltracepb.ExportTraceServiceResponse{}
	if len(rejected) > 0 || len(notes) > 0 {
		out.PartialSuccess = &coltracepb.ExportTracePartialSuccess{RejectedSpans: int64(len(rejected)),
			ErrorMessage: otlpMessage(rejected, notes)}
	}
	writeOTLP(w, format, http.StatusOK, out)
	return nil
}

// otlpMessage sums up rejected spans (the first few with their reason) and
// notes for the partial_success error_message.
func otlpMessage(rejected []otlp.Rejected, notes []string) string {
	var parts []string
	switch len(rejected) {
	case 0:
	case 1:
		parts = append(parts, "1 span rejected: "+listed(rejected))
	default:
		parts = append(parts, fmt.Sprintf("%d spans rejected: %s", len(rejected), listed(rejected)))
	}
	return strings.Join(append(parts, notes...), ". ")
}

// storedOnly leaves out of ignored the attributes of rejected spans.
func storedOnly(ignored []otlp.Ignored, rejected []otlp.Rejected) []otlp.Ignored {
	if len(ignored) == 0 {
		return nil
	}
	dropped := make(map[[2]string]bool, len(rejected))
	for _, r := range rejected {
		dropped[[2]string{r.TraceID, r.SpanID}] = true
	}
	out := make([]otlp.Ignored, 0, len(ignored))
	for _, i := range ignored {
		if !dropped[[2]string{i.TraceID, i.SpanID}] {
			out = append(out, i)
		}
	}
	return out
}

// listed lists the first few of items, and how many more.
func listed[T fmt.Stringer](items []T) string {
	const shown = 5
	parts := make([]string, 0, shown+1)
	for _, it := range items[:min(len(items), shown)] {
		parts = append(parts, it.String())
	}
	if len(items) > shown {
		parts = append(parts, fmt.Sprintf("and %d more", len(items)-shown))
	}
	return strings.Join(parts, "; ")
}

// unpricedNote says which spans were stored at no cost for want of a
// price, "" when none were.
func unpricedNote(us []otlp.Unpriced) string {
	if len(us) == 0 {
		return ""
	}
	const shown = 5
	parts := make([]string, 0, shown)
	for _, u := range us[:min(len(us), shown)] {
		spans := fmt.Sprintf("%d span", u.Spans)
		if u.Spans != 1 {
			spans += "s"
		}
		if u.Model == "" {
			parts = append(parts, "no model named ("+spans+")")
		} else {
			parts = append(parts, fmt.Sprintf("model %q (%s)", u.Model, spans))
		}
	}
	if len(us) > shown {
		parts = append(parts, fmt.Sprintf("and %d more models", len(us)-shown))
	}
	return "tokens of no known price, counted as costing 0: " + strings.Join(parts, ", ") +
		"; send runproof.cost_cents or gen_ai.usage.cost with such spans, or give the model's price to runproof serve --model-prices"
}

// readOTLPBody reads the body, gunzipping it when asked, with the size limit
// of the native API applied before and after decompression. It returns an
// HTTP status and a message when the body cannot be had.
func readOTLPBody(c *call) ([]byte, int, string) {
	const advice = "export fewer spans per request; OTEL_BSP_MAX_EXPORT_BATCH_SIZE sets the batch span processor's most"
	enc := strings.ToLower(strings.TrimSpace(c.r.Header.Get("Content-Encoding")))
	gzipped := enc == "gzip"
	if !gzipped && enc != "" && enc != "identity" {
		return nil, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Encoding %q is not supported: send gzip or none", enc)
	}
	raw, rm, err := readRaw(c, advice)
	if err != nil {
		return nil, statusOf[runproof.ErrorCode(err)], runproof.ErrorMessage(err)
	}
	if !gzipped {
		return raw, 0, ""
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, http.StatusBadRequest, "the body is not valid gzip"
	}
	// One byte over the limit tells an oversize body; a gzip bomb stops
	// there. The body's room grows to hold what it inflates to as well.
	rm.base, rm.grows = int64(len(raw)), true
	b, err := fill(io.LimitReader(zr, service.MaxBodyBytes+1), service.MaxBodyBytes+1, rm)
	var noRoom *runproof.Error
	switch {
	case errors.As(err, &noRoom):
		return nil, statusOf[noRoom.Code], noRoom.Message
	case err != nil:
		return nil, http.StatusBadRequest, "the body is not valid gzip"
	case len(b) > service.MaxBodyBytes:
		return nil, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes once decompressed (%s)", service.MaxBodyBytes, advice)
	}
	return b, 0, ""
}

// otlpFormatFor is the encoding r's answer takes: that of its body, or
// protobuf, OTLP's default, when it names neither.
func otlpFormatFor(r *http.Request) otlpFormat {
	format, _ := otlpFormatOf(r.Header.Get("Content-Type"))
	return format
}

// writeOTLPStatus answers an error with a google.rpc.Status, as OTLP/HTTP
// asks.
func writeOTLPStatus(w http.ResponseWriter, format otlpFormat, status int, msg string) {
	code := int32(3) // INVALID_ARGUMENT: the request is at fault, do not retry
	if status == http.StatusServiceUnavailable {
		code = 14 // UNAVAILABLE: retry
		// Soon: the exporter's own time (10 s, its retries included) is
		// short, and an answer comes within otlpWait when there is no room.
		w.Header().Set("Retry-After", "2")
	}
	writeOTLP(w, format, status, &statuspb.Status{Code: code, Message: msg})
}

func writeOTLP(w http.ResponseWriter, format otlpFormat, status int, m proto.Message) {
	b, err := format.marshal(m)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeBody(w, status, format.contentType, b)
}

// The types below document the OTLP JSON body in the OpenAPI document; the
// protobuf body is the same ExportTraceServiceRequest message.

// otlpTracesDoc is an OTLP ExportTraceServiceRequest in OTLP JSON.
type otlpTracesDoc struct {
	ResourceSpans []otlpResourceSpansDoc `json:"resourceSpans"`
}

type otlpResourceSpansDoc struct {
	Resource struct {
		Attributes []otlpKeyValueDoc `json:"attributes"`
	} `json:"resource"`
	ScopeSpans []otlpScopeSpansDoc `json:"scopeSpans"`
}

type otlpScopeSpansDoc struct {
	Scope struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"scope"`
	Spans []otlpSpanDoc `json:"spans"`
}

// otlpSpanDoc is one span: ids in hex, times as decimal strings of
// nanoseconds since the Unix epoch, enums as integers.
type otlpSpanDoc struct {
	TraceID           string            `json:"traceId"`
	SpanID            string            `json:"spanId"`
	ParentSpanID      string            `json:"parentSpanId"`
	Name              string            `json:"name"`
	Kind              int               `json:"kind"`
	StartTimeUnixNano string            `json:"startTimeUnixNano"`
	EndTimeUnixNano   string            `json:"endTimeUnixNano"`
	Attributes        []otlpKeyValueDoc `json:"attributes"`
	Status            struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
}

// otlpKeyValueDoc is an attribute: value is an AnyValue such as
// {"stringValue": "chat"} or {"intValue": "42"}.
type otlpKeyValueDoc struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

// otlpResponseDoc is an ExportTraceServiceResponse in OTLP JSON.
type otlpResponseDoc struct {
	PartialSuccess struct {
		RejectedSpans string `json:"rejectedSpans"`
		ErrorMessage  string `json:"errorMessage"`
	} `json:"partialSuccess"`
}
