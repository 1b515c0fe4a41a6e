package demo

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// policies are the demo tenant's rules, one of each type.
var policies = []service.PolicyInput{
	{Name: "Run spending cap", Type: runproof.PolicyCostLimit, Threshold: "200", Action: runproof.ActionStop},
	{Name: "Token budget per run", Type: runproof.PolicyTokenLimit, Threshold: "150000", Action: runproof.ActionStop},
	{Name: "Runaway loop guard", Type: runproof.PolicyStepLimit, Threshold: "40", Action: runproof.ActionStop},
	{Name: "Long run warning", Type: runproof.PolicyDurationLimit, Threshold: "180000", Action: runproof.ActionWarn},
	{Name: "No shell or destructive tools", Type: runproof.PolicyStepTypeDenied, Action: runproof.ActionStop,
		StepTypes: []string{"tool:shell", "tool:delete_records"}},
	{Name: "Only the support agent emails customers", Type: runproof.PolicyExpression, Action: runproof.ActionStop,
		Expression: `step.step_type == "tool:send_email" && run.agent_id != "support-bot"`},
}

// model is an LLM with its price in cents per token.
type model struct {
	name      string
	in, out   float64 // cents per token
	inTokens  [2]int  // typical prompt size range
	outTokens [2]int
}

var (
	gpt4o  = model{"llm:gpt-4o", 0.00025, 0.001, [2]int{900, 4200}, [2]int{120, 900}}
	mini   = model{"llm:gpt-4o-mini", 0.000015, 0.00006, [2]int{600, 2500}, [2]int{80, 500}}
	sonnet = model{"llm:claude-sonnet-4", 0.0003, 0.0015, [2]int{2000, 9000}, [2]int{300, 1600}}
	opus   = model{"llm:claude-opus-4", 0.0015, 0.0075, [2]int{8000, 9000}, [2]int{1500, 2600}}
)

// tool is a tool call: fixed cost (API fees) and duration range.
type tool struct {
	name     string
	cents    float64
	duration [2]int // ms
	content  func(r *rand.Rand) map[string]any
}

func searchTool(name string, cents float64, queries ...string) tool {
	return tool{name: name, cents: cents, duration: [2]int{180, 1400}, content: func(r *rand.Rand) map[string]any {
		return map[string]any{"query": queries[r.IntN(len(queries))], "results": 3 + r.IntN(8)}
	}}
}

// scenario is the shape of one run; plan turns it into steps.
type scenario struct {
	agent, goal string
	models      []model
	tools       []tool
	steps       [2]int // number of steps range
	// forced, when set, is the step type and model of the steps from
	// index at on: how the run goes wrong.
	at       int
	forced   []string
	loop     *model // the run loops on this model from at on
	showcase bool
}

// schedule is the day, in order.
func schedule() []scenario {
	support := scenario{agent: "support-bot", goal: "Answer customer ticket about a late delivery", models: []model{mini, gpt4o},
		tools: []tool{searchTool("tool:kb_search", 0, "delivery times", "refund policy", "order status API"),
			{name: "tool:send_email", duration: [2]int{300, 900}, content: func(r *rand.Rand) map[string]any {
				return map[string]any{"to": "customer", "template": "delivery-update"}
			}}}, steps: [2]int{4, 9}}
	research := scenario{agent: "research-agent", goal: "Summarise this week's papers on retrieval-augmented generation",
		models: []model{sonnet, gpt4o}, tools: []tool{searchTool("tool:web_search", 0.5, "RAG evaluation 2026", "long-context retrieval", "hybrid search benchmarks"),
			{name: "tool:fetch_url", duration: [2]int{400, 2500}, content: func(r *rand.Rand) map[string]any {
				return map[string]any{"url": fmt.Sprintf("https://arxiv.org/abs/2611.%05d", r.IntN(99999))}
			}}}, steps: [2]int{6, 12}}
	billing := scenario{agent: "billing-reconciler", goal: "Reconcile yesterday's card payments with the ledger",
		models: []model{mini}, tools: []tool{{name: "tool:sql_query", duration: [2]int{50, 600}, content: func(r *rand.Rand) map[string]any {
			return map[string]any{"sql": "SELECT id, amount FROM payments WHERE settled_on = current_date - 1", "rows": 200 + r.IntN(3000)}
		}}}, steps: [2]int{5, 10}}
	reviewer := scenario{agent: "code-reviewer", goal: "Review pull request 1842 (payment retries)", models: []model{sonnet},
		tools: []tool{{name: "tool:git_diff", duration: [2]int{80, 300}, content: func(r *rand.Rand) map[string]any {
			return map[string]any{"files": 2 + r.IntN(12)}
		}}}, steps: [2]int{3, 7}}
	pipeline := scenario{agent: "data-pipeline-agent", goal: "Refresh the churn dashboard tables", models: []model{mini, gpt4o},
		tools: []tool{{name: "tool:sql_query", duration: [2]int{200, 4000}, content: func(r *rand.Rand) map[string]any {
			return map[string]any{"sql": "INSERT INTO churn_daily SELECT …", "rows": 1000 + r.IntN(50000)}
		}}}, steps: [2]int{4, 8}}

	runaway := research
	runaway.goal, runaway.at, runaway.loop, runaway.showcase = "Compare pricing of the top five vector databases", 2, &opus, true
	bigDiff := reviewer
	bigDiff.goal, bigDiff.at, bigDiff.forced = "Review pull request 1851 (monorepo dependency upgrade)", 1, []string{"big-diff"}
	loop := support
	loop.goal, loop.at, loop.forced = "Answer customer ticket about a missing parcel", 2, []string{"kb-loop"}
	shell := pipeline
	shell.goal, shell.at, shell.forced = "Clean up stale staging tables", 3, []string{"tool:shell"}
	email := billing
	email.goal, email.at, email.forced = "Chase unpaid invoices over 60 days", 4, []string{"tool:send_email"}
	slow := pipeline
	slow.goal, slow.forced, slow.steps = "Backfill six months of churn events", []string{"slow"}, [2]int{10, 10}

	day := []scenario{support, research, billing, support, reviewer, pipeline, support, research, billing,
		reviewer, support, pipeline, research, runaway, support, billing, reviewer, bigDiff, support, pipeline,
		research, support, loop, billing, reviewer, shell, support, research, slow, billing, email, support,
		reviewer, pipeline, research, support}
	return day
}

// plan draws the run's steps.
func (sc scenario) plan(r *rand.Rand, start time.Time) plannedRun {
	run := plannedRun{agent: sc.agent, goal: sc.goal, start: start}
	n := sc.steps[0] + r.IntN(sc.steps[1]-sc.steps[0]+1)
	switch {
	case sc.loop != nil:
		n = sc.at + 20
	case len(sc.forced) > 0 && sc.forced[0] == "kb-loop":
		n = 46
	case len(sc.forced) > 0 && sc.forced[0] == "big-diff":
		n = 8
	case len(sc.forced) > 0:
		n = max(n, sc.at+2)
	}
	at := start.Add(time.Duration(200+r.IntN(400)) * time.Millisecond)
	for i := range n {
		st := sc.step(r, i)
		st.StepIndex = new(int64(i))
		st.Timestamp = at.Format(time.RFC3339Nano)
		run.steps = append(run.steps, st)
		ms := 0.0
		if st.DurationMs != "" {
			ms = mustFloat(string(st.DurationMs))
		}
		at = at.Add(time.Duration(ms*float64(time.Millisecond)) + time.Duration(30+r.IntN(250))*time.Millisecond)
	}
	run.end = at.Add(time.Duration(100+r.IntN(300)) * time.Millisecond)
	return run
}

// step draws step i of a run.
func (sc scenario) step(r *rand.Rand, i int) service.StepInput {
	going := i >= sc.at && (sc.loop != nil || len(sc.forced) > 0)
	switch {
	case going && sc.loop != nil:
		// the agent keeps asking again with everything so far: the
		// prompt grows by each answer
		m, grow := *sc.loop, 6000*(i-sc.at)
		m.inTokens = [2]int{m.inTokens[0] + grow, m.inTokens[1] + grow}
		return llmStep(r, m, "Not enough data yet; asking again with all results so far.")
	case going && sc.forced[0] == "big-diff":
		m := sonnet
		m.inTokens, m.outTokens = [2]int{24000, 31000}, [2]int{1500, 2500}
		return llmStep(r, m, "Reviewing the next chunk of the diff.")
	case going && sc.forced[0] == "slow":
		if i%2 == 1 {
			t := sc.tools[0]
			t.duration = [2]int{38000, 52000}
			return toolStep(r, t)
		}
		return llmStep(r, mini, "Next month of events.")
	case going && sc.forced[0] == "kb-loop":
		if i%2 == 0 {
			return toolStep(r, sc.tools[0])
		}
		return llmStep(r, mini, "The answer is still unclear; searching the knowledge base again.")
	case going && i == sc.at:
		name := sc.forced[0]
		t := tool{name: name, duration: [2]int{100, 900}, content: func(*rand.Rand) map[string]any {
			if name == "tool:shell" {
				return map[string]any{"command": "psql -c 'DROP TABLE staging_events_2025'"}
			}
			return map[string]any{"to": "accounts-payable@customer.example", "template": "overdue-reminder"}
		}}
		return toolStep(r, t)
	}
	if i%2 == 1 && len(sc.tools) > 0 {
		return toolStep(r, sc.tools[r.IntN(len(sc.tools))])
	}
	return llmStep(r, sc.models[r.IntN(len(sc.models))], "Working on it.")
}

func llmStep(r *rand.Rand, m model, reply string) service.StepInput {
	in := m.inTokens[0] + r.IntN(m.inTokens[1]-m.inTokens[0]+1)
	out := m.outTokens[0] + r.IntN(m.outTokens[1]-m.outTokens[0]+1)
	ms := 400 + out*12 + r.IntN(600)
	return service.StepInput{StepType: m.name, InputTokens: int64(in), OutputTokens: int64(out),
		CostCents: cents(float64(in)*m.in + float64(out)*m.out), DurationMs: service.Number(fmt.Sprint(ms)),
		Content: mustJSON(map[string]any{"model": m.name[len("llm:"):], "response": reply})}
}

func toolStep(r *rand.Rand, t tool) service.StepInput {
	ms := t.duration[0] + r.IntN(t.duration[1]-t.duration[0]+1)
	st := service.StepInput{StepType: t.name, CostCents: cents(t.cents), DurationMs: service.Number(fmt.Sprint(ms))}
	if t.content != nil {
		st.Content = mustJSON(t.content(r))
	}
	return st
}

func mustFloat(s string) float64 {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		panic(err)
	}
	return f
}

func mustJSON(v map[string]any) jsontext.Value {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
