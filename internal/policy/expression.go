package policy

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
	"cel.dev/cel-go/parser"
	"github.com/runproof/runproof/internal/runproof"
)

// variables are what an expression policy sees, with their types and their
// values for a step: step.* describe the step being judged; run.* are the
// run's running totals t including that step.
var variables = []struct {
	name  string
	typ   *cel.Type
	value func(in Input, t runproof.Totals) any
}{
	{"step.step_index", cel.IntType, func(in Input, _ runproof.Totals) any { return in.Step.Index }},
	{"step.step_type", cel.StringType, func(in Input, _ runproof.Totals) any { return in.Step.StepType }},
	{"step.input_tokens", cel.IntType, func(in Input, _ runproof.Totals) any { return in.Step.InputTokens }},
	{"step.output_tokens", cel.IntType, func(in Input, _ runproof.Totals) any { return in.Step.OutputTokens }},
	{"step.tokens", cel.IntType, func(in Input, _ runproof.Totals) any { return in.Step.InputTokens + in.Step.OutputTokens }},
	{"step.cost_cents", cel.DoubleType, func(in Input, _ runproof.Totals) any { return runproof.Cents(in.Step.CostMicrocents) }},
	{"step.duration_ms", cel.DoubleType, func(in Input, _ runproof.Totals) any { return runproof.Millis(in.Step.DurationMicros) }},
	{"run.agent_id", cel.StringType, func(in Input, _ runproof.Totals) any { return in.AgentID }},
	{"run.steps", cel.IntType, func(_ Input, t runproof.Totals) any { return t.Steps }},
	{"run.input_tokens", cel.IntType, func(_ Input, t runproof.Totals) any { return t.InputTokens }},
	{"run.output_tokens", cel.IntType, func(_ Input, t runproof.Totals) any { return t.OutputTokens }},
	{"run.tokens", cel.IntType, func(_ Input, t runproof.Totals) any { return t.Tokens() }},
	{"run.cost_cents", cel.DoubleType, func(_ Input, t runproof.Totals) any { return runproof.Cents(t.CostMicrocents) }},
	{"run.duration_ms", cel.DoubleType, func(_ Input, t runproof.Totals) any { return runproof.Millis(t.DurationMicros) }},
}

// activation gives the expressions of a step the variables' values, its
// run's totals t including it (an interpreter.Activation): each value is
// worked out when an expression reads it, and no map is made per step.
type activation struct {
	in Input
	t  runproof.Totals
}

func (a *activation) ResolveName(name string) (any, bool) {
	for _, v := range variables {
		if v.name == name {
			return v.value(a.in, a.t), true
		}
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

var celEnv = func() *cel.Env {
	opts := []cel.EnvOption{
		// step.cost_cents > 5 compares a double with an int: allowed, as
		// users write it (== and arithmetic still take one type: 5.0).
		cel.CrossTypeNumericComparisons(true),
		// A regular expression is compiled once, with the policy (see
		// compileExpression), and is small: matching runs inside the
		// append of every step, where CEL's cost limit cannot stop it.
		cel.ASTValidators(regexLiterals{}, cel.ValidateRegexProgramSizeLimit(MaxRegexProgram), scalarComparisons{}),
	}
	for _, v := range variables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		panic(err) // the declarations above are constant
	}
	return env
}()

// Limits of an expression policy, so that judging a step stays cheap.
const (
	MaxExpression   = 4096 // bytes of the expression
	MaxRegexProgram = 1000 // instructions of the program of one regular expression

	// MaxExpressionCost is the CEL cost at which one expression's
	// evaluation stops, failed; MaxStepCost the cost the expressions of a
	// snapshot may take together on one step, past which the rest are not
	// judged (failed; the one begun below it may take its own limit, so a
	// step's rules take at most the sum of the two): a step is judged
	// while the database's writer waits, so a tenant's rules must not be
	// able to hold it for long, whatever their number.
	MaxExpressionCost = 10_000
	MaxStepCost       = 10_000
)

// regexLiterals refuses a regular expression that is not a string literal
// of the expression: a pattern taken from the step (its step_type, say)
// would be compiled, at any size, for each step judged.
type regexLiterals struct{}

func (regexLiterals) Name() string { return "runproof.regex_literals" }

func (regexLiterals) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *celast.AST, iss *cel.Issues) {
	for _, pattern := range patterns(a) {
		if pattern.Kind() != celast.LiteralKind {
			iss.ReportErrorAtID(pattern.ID(), "matches takes its pattern as a string literal, written in the expression")
		}
	}
}

// scalarComparisons refuses ==, != and in over lists and maps (or values
// of no known type, which may be either): CEL charges such a comparison by
// the outer list's length, but it walks every element of every nested
// list, and lists built of one list repeated (L.map(i, L)) nest cheaply to
// millions of elements, which a short rule would compare for minutes while
// the database's writer waits. The variables are numbers and strings; the
// elements of lists, and their sizes, can still be compared.
type scalarComparisons struct{}

func (scalarComparisons) Name() string { return "runproof.scalar_comparisons" }

func (scalarComparisons) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *celast.AST, iss *cel.Issues) {
	compared := func(e celast.NavigableExpr) bool {
		if e.Kind() != celast.CallKind {
			return false
		}
		switch e.AsCall().FunctionName() {
		case operators.Equals, operators.NotEquals, operators.In:
			return true
		}
		return false
	}
	for _, e := range celast.MatchDescendants(celast.NavigateAST(a), compared) {
		call := e.AsCall()
		args := call.Args()
		if call.FunctionName() == operators.In {
			args = args[:1] // x in list: x is compared with each element
		}
		for _, arg := range args {
			for arg.Kind() == celast.CallKind && arg.AsCall().FunctionName() == overloads.TypeConvertDyn && len(arg.AsCall().Args()) == 1 {
				arg = arg.AsCall().Args()[0] // dyn(x) is x: dyn(run.cost_cents) == 50 compares a number
			}
			switch a.GetType(arg.ID()).Kind() {
			case types.ListKind, types.MapKind, types.DynKind:
				iss.ReportErrorAtID(arg.ID(), "==, != and in compare numbers, strings and bools here, not lists or maps, "+
					"nor values that may be either (of a list or map of mixed values), whose comparison can take far longer "+
					"than its CEL cost: compare their elements, or their size()")
			}
		}
	}
}

// patterns returns the patterns of an expression's matches calls.
func patterns(a *celast.AST) []celast.Expr {
	var out []celast.Expr
	for _, e := range celast.MatchDescendants(celast.NavigateAST(a), celast.FunctionMatcher("matches")) {
		call := e.AsCall()
		i := 1 // matches(s, re)
		if call.IsMemberFunction() {
			i = 0 // s.matches(re)
		}
		if args := call.Args(); len(args) > i {
			out = append(out, args[i])
		}
	}
	return out
}

// compileExpression parses and type-checks a CEL expression that must yield
// a bool, with a cost limit so that a policy cannot stall ingest, and
// compiles its regular expressions. It returns the most the expression can
// cost on any step (see worstCost), which a new policy is held to
// (checkWorstCost); one stored under looser limits is still judged, up to
// the cost limit.
func compileExpression(src string) (cel.Program, uint64, error) {
	if len(src) > MaxExpression {
		return nil, 0, fmt.Errorf("must be at most %d bytes", MaxExpression)
	}
	ast, iss := celEnv.Compile(src)
	if iss.Err() != nil {
		msg := strings.ReplaceAll(iss.Err().Error(), "\n", " ")
		if _, rest, ok := strings.Cut(msg, "undeclared reference to '"); ok { // step.foo reads as "undeclared reference to 'step'"
			name, _, _ := strings.Cut(rest, "'")
			if strings.Contains(src, name+"(") && name != "step" && name != "run" {
				msg += " (" + name + " is not a function here: CEL's standard ones are, such as size, contains, startsWith, endsWith and matches)"
			} else {
				names := make([]string, len(variables))
				for i, v := range variables {
					names[i] = v.name
				}
				msg += " (the variables are " + strings.Join(names, ", ") + ", and each always has a value)"
			}
		}
		return nil, 0, fmt.Errorf("invalid CEL expression: %s", msg)
	}
	if ast.OutputType() != cel.BoolType {
		return nil, 0, fmt.Errorf("the expression must be a bool, it is %s", ast.OutputType())
	}
	sizes := regexSizes{}
	for _, p := range patterns(ast.NativeRep()) {
		if lit, ok := p.AsLiteral().(types.String); ok {
			sizes[string(lit)], _ = types.RegexProgramSize(string(lit)) // it compiles: the validator compiled it
		}
	}
	worst, err := worstCost(ast, sizes)
	if err != nil {
		return nil, 0, err
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(MaxExpressionCost), cel.EvalOptions(cel.OptTrackCost), cel.CustomDecoratorV2(finiteDoubles),
		cel.OptimizeRegex(interpreter.MatchesRegexOptimization),
		cel.CostTrackerOptions(cost.OverloadTracker(overloads.Matches, sizes.matchCost), cost.OverloadTracker(overloads.MatchesString, sizes.matchCost),
			cost.OverloadTracker(overloads.AddList, concatCost)))
	if err != nil {
		return nil, 0, fmt.Errorf("invalid CEL expression: %w", err)
	}
	return prg, worst, nil
}

// worstCost is the most an expression can cost on any step, as CEL
// estimates it knowing how long its strings can be (boundEstimator).
func worstCost(ast *cel.Ast, sizes regexSizes) (uint64, error) {
	est, err := celEnv.EstimateCost(ast, boundEstimator{sizes})
	if err != nil {
		return 0, fmt.Errorf("invalid CEL expression: %w", err)
	}
	return est.Max, nil
}

// checkWorstCost refuses an expression that can cost more than
// MaxExpressionCost on some step (worst): there it would fail, unjudged,
// and an agent could send such steps on purpose.
func checkWorstCost(worst uint64) error {
	switch {
	case worst <= MaxExpressionCost:
		return nil
	case worst == math.MaxUint64:
		return fmt.Errorf("what it can cost on a step has no bound: it joins lists that are not written out in it (which may double " +
			"at each join; join only lists written out, as [a, b] + [c]), or works on a value whose size cannot be told, " +
			"as a map's member or a conversion of a time: it could fail, unjudged")
	}
	return fmt.Errorf("can cost up to %s on a step (with the longest step type and agent id, %d and %d bytes), "+
		"over the %d an expression may take: it would fail there, unjudged. Loop over fewer elements, or match a smaller pattern",
		costText(worst), runproof.MaxStepTypeLen, runproof.MaxName, MaxExpressionCost)
}

// costText writes a CEL cost, "more than can be counted" for one CEL
// cannot bound.
func costText(c uint64) string {
	if c == math.MaxUint64 {
		return "more than can be counted"
	}
	return strconv.FormatUint(c, 10)
}

// boundEstimator tells CEL's cost estimate how long the expressions'
// strings can be, and charges what matchCost and concatCost charge at run
// time, which CEL's own estimate does not know of, so that the estimate
// bounds what a step can cost.
type boundEstimator struct{ sizes regexSizes }

// stringSize bounds the length of a string variable, in bytes (at least
// its characters, which CEL sizes strings by).
func stringSize(path []string) *cost.SizeEstimate {
	if len(path) != 1 {
		return nil
	}
	switch path[0] {
	case "step.step_type":
		return &cost.SizeEstimate{Min: 1, Max: runproof.MaxStepTypeLen}
	case "run.agent_id":
		return &cost.SizeEstimate{Min: 0, Max: runproof.MaxName}
	}
	return nil
}

// maxFormatted bounds the characters of a number or bool written as a
// string (string(step.cost_cents)): 1.7976931348623157e+308 is 23.
const maxFormatted = 32

func (boundEstimator) EstimateSize(n cost.AstNode) *cost.SizeEstimate { return stringSize(n.Path()) }

func (e boundEstimator) EstimateCallCost(_, overloadID string, target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	switch overloadID {
	case overloads.Matches, overloads.MatchesString:
		return e.matchEstimate(target, args)
	case overloads.AddList:
		return joinEstimate(args)
	case overloads.BoolToString, overloads.IntToString, overloads.UintToString, overloads.DoubleToString:
		return &cost.CallEstimate{CostEstimate: cost.Estimate{Min: 1, Max: 1}, ResultSize: &cost.SizeEstimate{Max: maxFormatted}}
	case overloads.StringToString: // string(s) is s
		if len(args) == 1 {
			if size := cmp.Or(args[0].ComputedSize(), stringSize(args[0].Path())); size != nil {
				return &cost.CallEstimate{CostEstimate: cost.Estimate{Min: 1, Max: 1}, ResultSize: size}
			}
		}
	}
	return nil
}

// joinEstimate is what concatCost charges for joining two lists: the
// elements a macro adds to its accumulator, or the length of the list
// made. CEL knows a list's length only where the list is written out
// ([a, b], or a join of such): a join of any other list (a loop's
// variable, a list a macro made) is refused as a cost that cannot be
// bounded, since such lists may double at each join.
func joinEstimate(args []cost.AstNode) *cost.CallEstimate {
	unbounded := &cost.CallEstimate{CostEstimate: cost.Estimate{Max: math.MaxUint64}}
	if len(args) != 2 || !writtenOut(args[1].Expr()) || args[1].ComputedSize() == nil {
		return unbounded
	}
	added := *args[1].ComputedSize()
	if name := args[0].Expr().AsIdent(); args[0].Expr().Kind() == celast.IdentKind &&
		(name == parser.AccumulatorName || name == parser.HiddenAccumulatorName) {
		return &cost.CallEstimate{CostEstimate: cost.Estimate{Min: added.Min, Max: added.Max}}
	}
	if !writtenOut(args[0].Expr()) || args[0].ComputedSize() == nil {
		return unbounded
	}
	first := *args[0].ComputedSize()
	made := cost.SizeEstimate{Min: satAdd(first.Min, added.Min), Max: satAdd(first.Max, added.Max)}
	return &cost.CallEstimate{CostEstimate: cost.Estimate{Min: made.Min, Max: made.Max}, ResultSize: &made}
}

// writtenOut reports whether a list is written out in the expression,
// whatever its elements: a list literal, or a join of such.
func writtenOut(e celast.Expr) bool {
	switch e.Kind() {
	case celast.ListKind:
		return true
	case celast.CallKind:
		call := e.AsCall()
		return call.FunctionName() == operators.Add && len(call.Args()) == 2 && writtenOut(call.Args()[0]) && writtenOut(call.Args()[1])
	}
	return false
}

// matchEstimate is what matchCost charges for s.matches(re) or
// matches(s, re), on the longest text s can be, in bytes.
func (e boundEstimator) matchEstimate(target *cost.AstNode, args []cost.AstNode) *cost.CallEstimate {
	var text, pattern cost.AstNode
	switch {
	case target != nil && len(args) == 1: // s.matches(re)
		text, pattern = *target, args[0]
	case target == nil && len(args) == 2: // matches(s, re)
		text, pattern = args[0], args[1]
	default:
		return nil
	}
	if pattern.Expr().Kind() != celast.LiteralKind {
		return nil // refused by regexLiterals
	}
	lit, _ := pattern.Expr().AsLiteral().(types.String)
	size, known := e.sizes[string(lit)]
	bytes := textBytes(text)
	if !known || bytes == nil {
		return nil
	}
	return &cost.CallEstimate{CostEstimate: cost.Estimate{Min: matchCharge(bytes.Min, size), Max: matchCharge(bytes.Max, size)}}
}

// textBytes bounds the bytes of a string: a literal's exactly, a
// variable's by stringSize, any other's by CEL's estimate of its
// characters, each at most 4 bytes of UTF-8.
func textBytes(n cost.AstNode) *cost.SizeEstimate {
	if lit, ok := n.Expr().AsLiteral().(types.String); ok && n.Expr().Kind() == celast.LiteralKind {
		return &cost.SizeEstimate{Min: uint64(len(lit)), Max: uint64(len(lit))}
	}
	if s := stringSize(n.Path()); s != nil {
		return s
	}
	if s := n.ComputedSize(); s != nil {
		return &cost.SizeEstimate{Min: s.Min, Max: satMul(s.Max, utf8.UTFMax)}
	}
	return nil
}

// satAdd and satMul add and multiply costs, saturating at the largest,
// which stands for a cost that cannot be bounded.
func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func satMul(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

func itoa(i int) string { return strconv.Itoa(i) }

// finiteDoubles makes the arithmetic of an expression, and its
// conversions to double (double("NaN")), fail when they give an infinite
// or undefined double. CEL computes with doubles as IEEE 754
// does: x / 0.0 is an infinity, which compares above any limit, 0.0 / 0.0
// not a number, which compares false with anything, and a product can
// overflow to an infinity; an int's division by zero or overflow is an
// error. As an error, it fails the expression as an int's does, or is
// absorbed as CEL absorbs errors (by && and || whose other side decides),
// on every pass of a comprehension too.
func finiteDoubles(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
	if c, ok := i.(interpreter.InterpretableCall); ok {
		switch c.Function() {
		case operators.Divide, operators.Multiply, operators.Add, operators.Subtract, overloads.TypeConvertDouble:
			return finiteCall{c}, nil
		}
	}
	return i, nil
}

// finiteCall is an arithmetic call whose infinite or undefined double
// result is an error (see finiteDoubles).
type finiteCall struct{ interpreter.InterpretableCall }

func (f finiteCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	v := f.InterpretableCall.Exec(frame)
	if d, ok := v.(types.Double); ok && (math.IsInf(float64(d), 0) || math.IsNaN(float64(d))) {
		return types.NewErr("a computation with doubles gave %v (a division by zero, or an overflow; or a conversion of such a string)", float64(d))
	}
	return v
}

func (f finiteCall) Eval(a interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(a, f.Exec)
}

// concatCost is what joining two lists costs against CEL's limits: the
// length of the list made. CEL charges 1, but a list joined to itself
// again and again ([[1]].map(a, a + a)…) stands for millions of elements
// after a few dozen joins, which the next in or all walks through. A
// macro's accumulator (map, filter), which grows in place as each element
// is added, is charged the elements added, as CEL's estimate of it does
// (boundEstimator).
func concatCost(args []ref.Val, result ref.Val) *uint64 {
	list := result
	if len(args) == 2 {
		if _, inPlace := args[0].(traits.MutableLister); inPlace {
			list = args[1]
		}
	}
	sizer, ok := list.(traits.Sizer)
	if !ok {
		return nil
	}
	n, ok := sizer.Size().(types.Int)
	if !ok || n < 0 {
		return nil
	}
	c := uint64(n)
	return &c
}

// regexSizes are the sizes of the programs of an expression's regular
// expressions, by pattern.
type regexSizes map[string]int

// matchCost is what matching a regular expression costs against CEL's
// limits. CEL charges a tenth of the length of the text times a quarter of
// the length of the pattern, but the work is the text times the pattern's
// program, which a short pattern can make large ("(a|b){90}" compiles to
// hundreds of instructions): this charges a tenth of the text times the
// program, which keeps a unit of cost to about the time it takes
// elsewhere (BenchmarkEvaluateCostliestRegex).
func (sizes regexSizes) matchCost(args []ref.Val, _ ref.Val) *uint64 {
	if len(args) != 2 {
		return nil
	}
	text, ok := args[0].(types.String)
	pattern, isString := args[1].(types.String)
	size, known := sizes[string(pattern)]
	if !ok || !isString || !known {
		return nil // CEL's own estimate: not a pattern of the expression's, which cannot be
	}
	c := matchCharge(uint64(len(text)), size)
	return &c
}

// matchCharge is what matchCost charges for a text of n bytes and a
// program of size instructions.
func matchCharge(n uint64, size int) uint64 {
	if n == math.MaxUint64 {
		return n
	}
	return satMul(uint64(math.Ceil(float64(n+1)*cost.StringTraversalCostFactor)), uint64(size))
}

// StopCosts is the worst cost of each stop expression of ps that compiles,
// by its text: what CheckStopCost reads rather than compile the
// expressions again (under a store's write lock, say).
func StopCosts(ps []runproof.Policy) map[string]uint64 {
	costs := map[string]uint64{}
	for _, p := range ps {
		if _, done := costs[p.Expression]; IsStopExpression(p) && !done {
			if _, worst, err := compileExpression(p.Expression); err == nil { // one refused fails without being run
				costs[p.Expression] = worst
			}
		}
	}
	return costs
}

// CheckStopCost refuses to add policies (added, normalized) when the stop
// expressions of the tenant's active policies with them (one named as an
// active policy takes its place) could together cost more than
// MaxStepCost on one step: a stop rule judged past that total would go
// unjudged. Adding policies that are no stop expressions is never refused
// here, whatever the tenant holds already. known holds costs StopCosts
// worked out; those of other expressions are worked out here.
func CheckStopCost(active, added []runproof.Policy, known map[string]uint64) error {
	var names []string
	for _, p := range added {
		if IsStopExpression(p) {
			names = append(names, strconv.Quote(p.Name))
		}
	}
	if names == nil {
		return nil
	}
	byName := make(map[string]runproof.Policy, len(active)+len(added))
	for _, p := range slices.Concat(active, added) {
		byName[p.Name] = p
	}
	var total uint64
	n := 0
	for _, p := range byName {
		if !IsStopExpression(p) {
			continue
		}
		worst, ok := known[p.Expression]
		if !ok {
			_, w, err := compileExpression(p.Expression)
			worst, ok = w, err == nil // one refused fails without being run
		}
		if ok {
			total = satAdd(total, worst)
			n++
		}
	}
	if total > MaxStepCost {
		return runproof.Invalid(runproof.FieldError{Field: "expression", Message: fmt.Sprintf(
			"the tenant's stop expressions with %s (%d in all) could cost %s together on a step, over the %d a step's expressions share: "+
				"one judged past it would go unjudged on such a step. Make them cheaper, or make some warn",
			strings.Join(names, ", "), n, costText(total), MaxStepCost)})
	}
	return nil
}

// IsStopExpression reports whether p is an expression policy that stops
// a run: what CheckStopCost holds to a step's budget.
func IsStopExpression(p runproof.Policy) bool {
	return p.Type == runproof.PolicyExpression && p.Action == runproof.ActionStop
}
