package policy

import (
	"fmt"
	"strconv"
	"strings"

	"cel.dev/cel-go/cel"
)

// The variables an expression policy sees. step.* describe the step being
// judged; run.* are the run's running totals including that step.
var celEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("step.step_index", cel.IntType),
		cel.Variable("step.step_type", cel.StringType),
		cel.Variable("step.input_tokens", cel.IntType),
		cel.Variable("step.output_tokens", cel.IntType),
		cel.Variable("step.tokens", cel.IntType),
		cel.Variable("step.cost_cents", cel.DoubleType),
		cel.Variable("step.duration_ms", cel.DoubleType),
		cel.Variable("run.agent_id", cel.StringType),
		cel.Variable("run.steps", cel.IntType),
		cel.Variable("run.input_tokens", cel.IntType),
		cel.Variable("run.output_tokens", cel.IntType),
		cel.Variable("run.tokens", cel.IntType),
		cel.Variable("run.cost_cents", cel.DoubleType),
		cel.Variable("run.duration_ms", cel.DoubleType),
		// step.cost_cents > 5 compares a double with an int: allowed, as
		// users write it (== and arithmetic still take one type: 5.0).
		cel.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		panic(err) // the declarations above are constant
	}
	return env
}()

// compileExpression parses and type-checks a CEL expression that must yield
// a bool, with a cost limit so that a policy cannot stall ingest.
func compileExpression(src string) (cel.Program, error) {
	ast, iss := celEnv.Compile(src)
	if iss.Err() != nil {
		return nil, fmt.Errorf("invalid CEL expression: %s", strings.ReplaceAll(iss.Err().Error(), "\n", " "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("the expression must be a bool, it is %s", ast.OutputType())
	}
	prg, err := celEnv.Program(ast, cel.CostLimit(10_000))
	if err != nil {
		return nil, fmt.Errorf("invalid CEL expression: %w", err)
	}
	return prg, nil
}

func itoa(i int) string { return strconv.Itoa(i) }
