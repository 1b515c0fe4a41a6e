package otlp

import (
	"bytes"
	"cmp"
	"encoding/hex"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/runproof/runproof/internal/runproof"
)

// Attributes read from spans (and, where noted, from their resource).
const (
	AttrRunID          = "runproof.run_id"          // the run; span or resource
	AttrCostCents      = "runproof.cost_cents"      // the step's cost in cents
	AttrConversationID = "gen_ai.conversation.id"   // the run, when no runproof.run_id; span or resource
	AttrAgentName      = "gen_ai.agent.name"        // the agent; span or resource
	AttrAgentID        = "gen_ai.agent.id"          // the agent, when no name; span or resource
	AttrAgentDesc      = "gen_ai.agent.description" // the run's goal; span or resource
	AttrOperation      = "gen_ai.operation.name"
	AttrToolName       = "gen_ai.tool.name"
	AttrRequestModel   = "gen_ai.request.model"
	AttrResponseModel  = "gen_ai.response.model"
	AttrInputTokens    = "gen_ai.usage.input_tokens"
	AttrOutputTokens   = "gen_ai.usage.output_tokens"
	AttrUsageCost      = "gen_ai.usage.cost" // USD, when no runproof.cost_cents
	AttrServiceName    = "service.name"      // resource: the agent, when no gen_ai.agent.*
)

// Other names that instrumentations give the same things, read when the
// names above are absent: the GenAI conventions before 1.27 (prompt and
// completion tokens), OpenInference (Arize Phoenix and its instrumentations)
// and the Vercel AI SDK (its tool calls).
var (
	inputTokenAttrs  = []string{AttrInputTokens, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"}
	outputTokenAttrs = []string{AttrOutputTokens, "gen_ai.usage.completion_tokens", "llm.token_count.completion"}
	modelAttrs       = []string{AttrResponseModel, AttrRequestModel, "llm.model_name"} // what ran first
	toolAttrs        = []string{AttrToolName, "tool.name", "ai.toolCall.name"}
)

// UnknownAgent is the agent id of a run whose spans name no agent and whose
// resource has no service.name, as OpenTelemetry names an unknown service.
const UnknownAgent = "unknown_service"

// RunSource says what named a run.
type RunSource string

const (
	FromRunID        RunSource = AttrRunID
	FromConversation RunSource = AttrConversationID
	FromTrace        RunSource = "trace_id"
)

// Options tune Map.
type Options struct {
	Now    time.Time // times more than runproof.MaxClockSkew after Now are refused
	Prices Prices    // model prices; nil means DefaultPrices
}

// Result is what one export request holds for runproof.
type Result struct {
	Runs     []Run      // in order of their first span
	Rejected []Rejected // in the order of the request
	// Unpriced counts the accepted spans with tokens but no cost: no cost
	// attribute, and no model or one the price table does not have. Their
	// cost is zero.
	Unpriced []Unpriced // by model
	// Ignored are the attributes of accepted spans that could not be read
	// and count as absent, in the order of the request.
	Ignored []Ignored
}

// Unpriced is how many spans with tokens name a model of no known price
// ("" for none).
type Unpriced struct {
	Model string
	Spans int
}

// Run is the spans of one run in one request.
type Run struct {
	ID      string
	Source  RunSource
	TraceID string // of its first span, lowercase hex
	// AgentID is the agent the spans' resource names (gen_ai.agent.name or
	// gen_ai.agent.id), else the first span that names one, else the
	// resource's service.name. The resource wins: a span may name a
	// sub-agent the run's agent called, as the GenAI conventions have it.
	AgentID string
	// ResourceAgent is the agent the first of the spans' resources that
	// names one names, "" for none.
	ResourceAgent string
	Goal          string    // first gen_ai.agent.description, else ""
	StartedAt     time.Time // earliest span start
	Spans         []Span    // by start time, ties as given
	// End is set when the run is named by its trace id and the request
	// holds the trace's root span: the run ends with it.
	End *End
}

// End is how and when a run ends: with its root span.
type End struct {
	SpanID string
	Failed bool // the root span's status is ERROR
	At     time.Time
}

// Span is one accepted span as the fields of a step (its index is given
// when it is stored).
type Span struct {
	TraceID, SpanID string // lowercase hex
	Timestamp       time.Time
	StepType        string
	InputTokens     int64
	OutputTokens    int64
	CostMicrocents  int64
	DurationMicros  int64
	Content         []byte // JSON object {"otel_span": …}
	// ResourceAgent is the agent its resource names (gen_ai.agent.name or
	// gen_ai.agent.id), "" for none.
	ResourceAgent string
}

// Rejected is a span that cannot become a step, and why.
type Rejected struct {
	TraceID, SpanID string // hex, as sent
	Reason          string
}

func (r Rejected) String() string { return "span " + r.SpanID + ": " + r.Reason }

// Ignored is an attribute of an accepted span that could not be read (a
// token count sent as a string, a negative cost), and counts as absent:
// the span is a step all the same, so that a denied tool it calls is not
// missed for a bad number beside it.
type Ignored struct {
	TraceID, SpanID string // hex, as sent
	Reason          string
}

func (i Ignored) String() string { return "span " + i.SpanID + ": " + i.Reason }

// Map turns an export request into per-run spans and rejected spans.
func Map(req *coltracepb.ExportTraceServiceRequest, opts Options) Result {
	if opts.Prices == nil {
		opts.Prices = defaultPrices()
	}
	spans, rejected := mapSpans(req, opts)
	runs, more := group(spans)
	accepted := notRejected(spans, more)
	return Result{Runs: runs, Rejected: append(rejected, more...), Unpriced: unpriced(accepted), Ignored: ignored(accepted)}
}

// notRejected returns the spans but those rejected.
func notRejected(spans []*span, rejected []Rejected) []*span {
	dropped := make(map[string]bool, len(rejected))
	for _, r := range rejected {
		dropped[r.TraceID+r.SpanID] = true
	}
	return slices.DeleteFunc(slices.Clone(spans), func(s *span) bool { return dropped[s.TraceID+s.SpanID] })
}

// ignored lists the attributes of spans counted as absent.
func ignored(spans []*span) []Ignored {
	var out []Ignored
	for _, s := range spans {
		for _, reason := range s.ignored {
			out = append(out, Ignored{TraceID: s.TraceID, SpanID: s.SpanID, Reason: reason})
		}
	}
	return out
}

// unpriced counts the spans of no known cost by the model they name (cut
// to 100 bytes).
func unpriced(spans []*span) []Unpriced {
	var counts []Unpriced
	for _, s := range spans {
		if !s.unpriced {
			continue
		}
		model := truncate(s.model, 100)
		if i := slices.IndexFunc(counts, func(u Unpriced) bool { return u.Model == model }); i >= 0 {
			counts[i].Spans++
		} else {
			counts = append(counts, Unpriced{Model: model, Spans: 1})
		}
	}
	slices.SortFunc(counts, func(a, b Unpriced) int { return strings.Compare(a.Model, b.Model) })
	return counts
}

// mapSpans maps every span of the request, in parallel (writing the
// content is most of the work), and returns the accepted ones in step
// order: by start time, ties as the request gives them. A span sent twice
// counts once.
func mapSpans(req *coltracepb.ExportTraceServiceRequest, opts Options) ([]*span, []Rejected) {
	type item struct {
		sp       *tracepb.Span
		resource []*commonpb.KeyValue
		parts    contentParts
		s        *span
		reason   string
	}
	var items []item
	for _, rs := range req.GetResourceSpans() {
		resource := rs.GetResource().GetAttributes()
		resJSON := appendAttributes(nil, serviceAttributes(resource)) // written once, copied into every span's content
		for _, ss := range rs.GetScopeSpans() {
			parts := contentParts{resource: resJSON, scope: appendScope(nil, ss.GetScope())}
			for _, sp := range ss.GetSpans() {
				items = append(items, item{sp: sp, resource: resource, parts: parts})
			}
		}
	}
	parallel(len(items), func(i int) {
		it := &items[i]
		it.s, it.reason = mapSpan(it.sp, it.resource, it.parts, opts)
	})

	var spans []*span
	var rejected []Rejected
	seen := map[string]*span{}
	for _, it := range items {
		s := it.s
		if it.reason != "" {
			rejected = append(rejected, Rejected{TraceID: hex.EncodeToString(it.sp.GetTraceId()),
				SpanID: hex.EncodeToString(it.sp.GetSpanId()), Reason: it.reason})
			continue
		}
		if first, ok := seen[s.TraceID+s.SpanID]; ok {
			if !bytes.Equal(first.Content, s.Content) || !first.Timestamp.Equal(s.Timestamp) || first.DurationMicros != s.DurationMicros {
				rejected = append(rejected, Rejected{TraceID: s.TraceID, SpanID: s.SpanID,
					Reason: "the request holds this span twice, with different content"})
			}
			continue
		}
		seen[s.TraceID+s.SpanID] = s
		spans = append(spans, s)
	}
	// Spans that start at the same time are ordered as the request gives
	// them: exporters queue spans as they end. Not by their end: OpenTelemetry
	// JS takes a start to the millisecond and adds a duration to the
	// nanosecond, so that of two spans of one millisecond the later may
	// seem to end first.
	slices.SortStableFunc(spans, func(a, b *span) int { return cmp.Compare(a.start, b.start) })
	return spans, rejected
}

// group puts spans (in step order) into runs. A trace is one run: the first
// span that names a run (runproof.run_id before gen_ai.conversation.id)
// names it for every span of the trace in this request; else the trace id
// does.
func group(spans []*span) ([]Run, []Rejected) {
	namer := map[string]*span{}
	for _, s := range spans {
		if first, ok := namer[s.TraceID]; !ok || rank(s.runSource) < rank(first.runSource) {
			namer[s.TraceID] = s
		}
	}
	type building struct {
		Run
		service string
	}
	var order []*building
	var rejected []Rejected
	runs := map[string]*building{}
	for _, s := range spans {
		id, source := namer[s.TraceID].runID, namer[s.TraceID].runSource
		if id == "" {
			id, source = s.TraceID, FromTrace
		}
		if !runproof.ValidID(id) {
			rejected = append(rejected, Rejected{TraceID: s.TraceID, SpanID: s.SpanID,
				Reason: fmt.Sprintf("%s %q is not a valid run id: it %s", source, id, runproof.IDRule)})
			continue
		}
		r := runs[id]
		if r == nil {
			r = &building{Run: Run{ID: id, Source: source, TraceID: s.TraceID, StartedAt: s.Timestamp}}
			runs[id] = r
			order = append(order, r)
		}
		r.ResourceAgent = firstNonEmpty(r.ResourceAgent, s.ResourceAgent)
		r.AgentID = firstNonEmpty(r.AgentID, s.agent)
		r.Goal = firstNonEmpty(r.Goal, s.goal)
		r.service = firstNonEmpty(r.service, s.service)
		if s.root && source == FromTrace && (r.End == nil || !s.end.Before(r.End.At)) {
			r.End = &End{SpanID: s.SpanID, Failed: s.failed, At: s.end}
		}
		r.Spans = append(r.Spans, s.Span)
	}
	out := make([]Run, len(order))
	for i, r := range order {
		r.AgentID = firstNonEmpty(r.ResourceAgent, r.AgentID, r.service, UnknownAgent)
		out[i] = r.Run
	}
	return out, rejected
}

// serviceAttributes are the resource attributes a step keeps: those that
// name the service that sent the span (service.name, service.version,
// service.instance.id, …). The rest of a resource (SDK, host, process) is
// the same for every span of a process and would only weigh every step.
func serviceAttributes(resource []*commonpb.KeyValue) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	for _, kv := range resource {
		if strings.HasPrefix(kv.GetKey(), "service.") {
			out = append(out, kv)
		}
	}
	return out
}

// parallel calls fn for 0 ≤ i < n, spread over the cores.
func parallel(n int, fn func(i int)) {
	chunk := max(64, (n+runtime.GOMAXPROCS(0)-1)/runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for from := 0; from < n; from += chunk {
		wg.Go(func() {
			for i := from; i < min(from+chunk, n); i++ {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// rank orders run sources: an explicit run id wins over a conversation.
func rank(s RunSource) int {
	switch s {
	case FromRunID:
		return 0
	case FromConversation:
		return 1
	}
	return 2
}

// span is a mapped span with what Map needs to group it.
type span struct {
	Span
	start     uint64 // nanoseconds, to order spans within one microsecond
	end       time.Time
	root      bool
	failed    bool
	runID     string
	runSource RunSource
	agent     string // the agent the span itself names
	goal      string
	service   string
	model     string   // gen_ai.response.model, else gen_ai.request.model
	unpriced  bool     // tokens but no cost: no cost attribute, no price for model
	ignored   []string // why attributes that could not be read count as absent
}

// mapSpan checks one span and maps it, or says why it is rejected.
func mapSpan(sp *tracepb.Span, resource []*commonpb.KeyValue, parts contentParts, opts Options) (*span, string) {
	s := &span{}
	switch {
	case len(sp.GetTraceId()) != 16 || allZero(sp.GetTraceId()):
		return nil, "trace_id is required: 16 bytes, not all zero"
	case len(sp.GetSpanId()) != 8 || allZero(sp.GetSpanId()):
		return nil, "span_id is required: 8 bytes, not all zero"
	case len(sp.GetParentSpanId()) != 0 && len(sp.GetParentSpanId()) != 8:
		return nil, "parent_span_id must be empty or 8 bytes"
	case sp.GetStartTimeUnixNano() == 0:
		return nil, "start_time_unix_nano is required"
	case sp.GetEndTimeUnixNano() == 0:
		return nil, "end_time_unix_nano is required: only ended spans are recorded"
	case sp.GetEndTimeUnixNano() < sp.GetStartTimeUnixNano():
		return nil, "end_time_unix_nano is before start_time_unix_nano"
	case sp.GetEndTimeUnixNano() > math.MaxInt64:
		return nil, "end_time_unix_nano is out of range"
	}
	s.TraceID, s.SpanID = hex.EncodeToString(sp.GetTraceId()), hex.EncodeToString(sp.GetSpanId())
	s.start = sp.GetStartTimeUnixNano()
	start, end := time.Unix(0, int64(sp.GetStartTimeUnixNano())).UTC(), time.Unix(0, int64(sp.GetEndTimeUnixNano())).UTC()
	if err := runproof.CheckReportedTime(start, opts.Now); err != nil {
		return nil, "start_time_unix_nano " + err.Error()
	}
	if err := runproof.CheckReportedTime(end, opts.Now); err != nil {
		return nil, "end_time_unix_nano " + err.Error()
	}
	s.Timestamp, s.end = runproof.Timestamp(start), runproof.Timestamp(end)
	s.DurationMicros = int64(sp.GetEndTimeUnixNano()/1000 - sp.GetStartTimeUnixNano()/1000)
	s.root = len(sp.GetParentSpanId()) == 0
	s.failed = sp.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR

	attrs := sp.GetAttributes()
	s.StepType = stepType(sp.GetName(), attrs)
	switch {
	case strings.TrimSpace(s.StepType) == "":
		return nil, "the span has no name and no " + AttrOperation + ": one of them is required"
	case len(s.StepType) > runproof.MaxStepTypeLen:
		return nil, fmt.Sprintf("its step type %q is over %d bytes", truncate(s.StepType, 40), runproof.MaxStepTypeLen)
	case runproof.CheckText(s.StepType) != nil:
		return nil, fmt.Sprintf("its step type %q %s", truncate(s.StepType, 40), runproof.CheckText(s.StepType))
	}
	for _, c := range []struct {
		names []string
		dst   *int64
	}{{inputTokenAttrs, &s.InputTokens}, {outputTokenAttrs, &s.OutputTokens}} {
		name, v := first(attrs, c.names)
		if n, ok := count(v); ok {
			*c.dst = n
		} else {
			s.ignored = append(s.ignored, name+" must be a whole number from 0 to 9007199254740992 (2^53): counted as 0")
		}
	}
	var priced bool
	var reason string
	if s.CostMicrocents, priced, s.ignored, reason = cost(attrs, s.InputTokens, s.OutputTokens, opts.Prices, s.ignored); reason != "" {
		return nil, reason
	}
	s.model = firstStr(attrs, modelAttrs)
	s.unpriced = !priced && s.InputTokens+s.OutputTokens > 0
	// Names and descriptions are shown as sent, but for what runproof keeps
	// out of its records (control characters: an ANSI-coloured description,
	// say), which would otherwise reject the run and every span of it.
	s.ResourceAgent = truncate(firstNonEmpty(cleanName(str(resource, AttrAgentName)), cleanName(str(resource, AttrAgentID))), runproof.MaxName)
	s.agent = truncate(firstNonEmpty(cleanName(str(attrs, AttrAgentName)), cleanName(str(attrs, AttrAgentID))), runproof.MaxName)
	s.goal = truncate(runproof.StripProse(firstNonEmpty(str(attrs, AttrAgentDesc), str(resource, AttrAgentDesc))), runproof.MaxGoal)
	s.service = truncate(cleanName(str(resource, AttrServiceName)), runproof.MaxName)
	if s.runID = lookup(attrs, resource, AttrRunID); s.runID != "" {
		s.runSource = FromRunID
	} else if s.runID = lookup(attrs, resource, AttrConversationID); s.runID != "" {
		s.runSource = FromConversation
	}
	s.Content = appendContent(make([]byte, 0, 512+len(parts.resource)), sp, s, parts)
	return s, ""
}

// stepType is gen_ai.operation.name and what it acted on: the tool, the
// model or the agent ("chat:gpt-4o", "execute_tool:web_search"); the span
// name when there is no operation.
func stepType(name string, attrs []*commonpb.KeyValue) string {
	// White space around a name is none of it: a policy names step types
	// without it.
	op, tool := strings.TrimSpace(str(attrs, AttrOperation)), firstStr(attrs, toolAttrs)
	switch {
	case op != "":
	case tool != "": // a tool call that does not say so (the Vercel AI SDK's, say)
		op = "execute_tool"
	default: // what OpenInference calls the span, or the Vercel AI SDK's call of a model
		op = openInferenceKinds[str(attrs, "openinference.span.kind")]
		if id := str(attrs, "ai.operationId"); op == "" && (strings.HasSuffix(id, ".doGenerate") || strings.HasSuffix(id, ".doStream")) {
			op = "chat"
		}
	}
	if op == "" {
		return strings.TrimSpace(name)
	}
	if on := cmp.Or(tool, firstStr(attrs, []string{AttrRequestModel, AttrResponseModel, "llm.model_name"}),
		cleanName(str(attrs, AttrAgentName))); on != "" {
		return op + ":" + on
	}
	return op
}

// openInferenceKinds are the GenAI operations of OpenInference's span kinds.
var openInferenceKinds = map[string]string{"LLM": "chat", "TOOL": "execute_tool", "AGENT": "invoke_agent", "EMBEDDING": "embeddings"}

// cost is the step's cost in microcents: runproof.cost_cents, else
// gen_ai.usage.cost (USD), else the tokens at the model's price (response
// model first: it is what ran), else zero, not priced. A cost attribute
// that cannot be read counts as absent, and says why in ignored; tokens
// that cost more at their price than runproof counts reject the span
// (reason), since no cost could stand for theirs.
func cost(attrs []*commonpb.KeyValue, in, out int64, prices Prices, ignored []string) (n int64, priced bool, _ []string, reason string) {
	for _, c := range []struct {
		name  string
		scale int64
	}{{AttrCostCents, runproof.MicrocentsPerCent}, {AttrUsageCost, 100 * runproof.MicrocentsPerCent}} {
		v := attr(attrs, c.name)
		if v == nil {
			continue
		}
		n, err := fixed(v, c.scale)
		if err == nil {
			return n, true, ignored, ""
		}
		ignored = append(ignored, c.name+" "+err.Error()+": counted as absent")
	}
	for _, name := range modelAttrs {
		model := str(attrs, name)
		if p, ok := prices.Lookup(model); ok && model != "" {
			n, ok := p.Cost(in, out)
			if !ok {
				return 0, false, ignored, "the cost of its tokens is out of range"
			}
			return n, true, ignored, ""
		}
	}
	return 0, false, ignored, ""
}

// fixed reads a number attribute into units of 1/scale exactly.
func fixed(v *commonpb.AnyValue, scale int64) (int64, error) {
	var s string
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		s = strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		s = strconv.FormatFloat(x.DoubleValue, 'g', -1, 64) // 1e+300, not 301 digits
	default:
		return 0, fmt.Errorf("must be a number")
	}
	return runproof.ParseAmount(s, scale)
}

// count reads a token count: absent is zero; a whole number from 0 to
// runproof.MaxExact, as the native API takes.
func count(v *commonpb.AnyValue) (int64, bool) {
	switch x := v.GetValue().(type) {
	case nil:
		return 0, true
	case *commonpb.AnyValue_IntValue:
		return x.IntValue, x.IntValue >= 0 && x.IntValue <= runproof.MaxExact
	case *commonpb.AnyValue_DoubleValue:
		if d := x.DoubleValue; d >= 0 && d <= 1<<53 && d == math.Trunc(d) {
			return int64(d), true
		}
	}
	return 0, false
}

// attr is the value of an attribute, nil when absent; a repeated key
// counts with its last value.
func attr(kvs []*commonpb.KeyValue, key string) *commonpb.AnyValue {
	for i := len(kvs) - 1; i >= 0; i-- {
		if kvs[i].GetKey() == key {
			return kvs[i].GetValue()
		}
	}
	return nil
}

// first is the first of names the span has, and its value; the first name
// and nil when it has none.
func first(kvs []*commonpb.KeyValue, names []string) (string, *commonpb.AnyValue) {
	for _, n := range names {
		if v := attr(kvs, n); v != nil {
			return n, v
		}
	}
	return names[0], nil
}

// firstStr is the first of the string attributes names that the span has
// and is not blank, without the white space around it (none of a name).
func firstStr(kvs []*commonpb.KeyValue, names []string) string {
	for _, n := range names {
		if v := strings.TrimSpace(str(kvs, n)); v != "" {
			return v
		}
	}
	return ""
}

// str is a string attribute, "" when absent or of another type.
func str(kvs []*commonpb.KeyValue, key string) string { return attr(kvs, key).GetStringValue() }

// lookup finds a string attribute on the span, else on its resource.
func lookup(span, resource []*commonpb.KeyValue, key string) string {
	return firstNonEmpty(str(span, key), str(resource, key))
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// cleanName is an agent's or a service's name as runproof keeps it:
// without control characters or surrounding white space; a blank one is
// none.
func cleanName(s string) string { return strings.TrimSpace(runproof.StripText(s)) }

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
