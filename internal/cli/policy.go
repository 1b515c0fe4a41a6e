package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

func policyApplyCommand() *command {
	return &command{
		name:    "policy apply",
		summary: "add policies from a JSON or YAML file",
		help: `Usage: runproof policy apply --tenant T FILE [flags]

Adds the policies in FILE ("-" for stdin) as new versions: a new name starts
at v1, an existing name gets its next version, unless its active version
says the same already (unchanged), so that applying a file again adds only
what differs. They are added together: a run starting meanwhile is judged
by all of the new versions or by none. Runs already started keep the
versions they started with. If one policy is invalid, or a name is given
twice, none is added.

FILE is JSON or YAML (by extension .yaml/.yml, or when it does not start
with "[" or "{"): a list of policies, or a single one, with the fields
name, type, threshold, action, step_types, expression.

  --tenant T            the tenant the policies belong to (required)
` + commonHelp + `
Prints one line per policy: name, type, version, id, and "unchanged" for
those not added again. YAML is read as YAML 1.2 (on and yes are words); a
number written otherwise than plainly (010, which YAML 1.1 reads as 8;
0x10; 1_000) is refused with its line. Warns when the
tenant has no API key (a mistyped --tenant).

Example (policies.yaml):
  - name: cost-cap
    type: cost_limit        # cents, running total of the run
    threshold: 500
    action: stop
  - name: no-shell
    type: step_type_denied
    step_types: [shell]
    action: warn

  runproof policy apply --tenant acme policies.yaml
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 {
					return usagef("policy apply: name one FILE (or - for stdin), e.g. runproof policy apply --tenant acme policies.yaml")
				}
				if err := checkTenant("policy apply", *tenant); err != nil {
					return err
				}
				return applyPolicies(ctx, e, *tenant, args[0])
			}
		},
	}
}

func applyPolicies(ctx context.Context, e *env, tenant, file string) error {
	name := inputName(file)
	raw, err := readInput(ctx, file, e.stdin)
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: interrupted before it was read whole: no policy was added", name)
	} else if err != nil {
		return err
	}
	inputs, err := parsePolicies(file, raw)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	// All or nothing: check every policy before storing the first, and
	// name every one at fault.
	var invalid []string
	named := map[string]int{} // the first policy of each name
	for i, in := range inputs {
		if err := service.ValidatePolicy(tenant, in); err != nil {
			invalid = append(invalid, fmt.Sprintf("policy %d (%q): %s", i+1, in.Name, fieldMessage(err)))
		} else if first, twice := named[storedName(in.Name)]; twice {
			invalid = append(invalid, fmt.Sprintf("policy %d (%q): the name of policy %d too: give each policy once", i+1, in.Name, first+1))
		} else {
			named[storedName(in.Name)] = i
		}
	}
	if n := len(invalid); n > 0 {
		msg := strings.Join(invalid[:min(n, maxFieldMessages)], "; ")
		if n > maxFieldMessages {
			msg += fmt.Sprintf("; and %d more", n-maxFieldMessages)
		}
		return fmt.Errorf("%s: %s (no policy was added)", name, msg)
	}

	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := service.New(store, service.Options{})
	active, err := svc.ActivePolicies(ctx, tenant)
	if err != nil {
		return err
	}
	byName := make(map[string]runproof.Policy, len(active))
	for _, p := range active {
		byName[p.Name] = p
	}
	var changed []service.PolicyInput
	for _, in := range inputs {
		if p, ok := byName[storedName(in.Name)]; !ok || !service.SamePolicy(p, in) {
			changed = append(changed, in)
		}
	}
	var added []runproof.Policy
	if len(changed) > 0 {
		if added, err = svc.CreatePolicies(ctx, tenant, changed...); err != nil {
			return fmt.Errorf("%s: %s (no policy was added)", name, fieldMessage(err))
		}
		// The audit events go with the policies, even when the command is
		// interrupted right after: no policy is added unaccounted for.
		events := make([]runproof.AuditEvent, len(added))
		for i, p := range added {
			events[i] = cliEvent(tenant, runproof.AuditWrite, "policies.apply", "policy/"+p.ID,
				runproof.DecisionAllow, fmt.Sprintf("%s v%d (%s) from %s", p.Name, p.Version, p.Type, name))
		}
		if err := record(ctx, svc, events...); err != nil {
			return fmt.Errorf("%s: %s added but their audit events could not be recorded: %w", name, counted(int64(len(added)), "policy was", "policies were"), err)
		}
	}
	fresh := make(map[string]bool, len(added))
	for _, p := range added {
		byName[p.Name], fresh[p.Name] = p, true
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, in := range inputs {
		p := byName[storedName(in.Name)]
		fmt.Fprintf(tw, "%s\t%s\tv%d\t%s", cell(p.Name), p.Type, p.Version, p.ID)
		if !fresh[p.Name] {
			fmt.Fprint(tw, "\tunchanged")
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	warnKeyless(ctx, e, svc, tenant)
	return nil
}

// storedName is a policy's name as it is stored: trimmed (policy.Normalize).
func storedName(name string) string { return strings.TrimSpace(name) }

func policyListCommand() *command {
	return &command{
		name:    "policy list",
		summary: "list a tenant's active policies",
		help: `Usage: runproof policy list --tenant T [flags]

Prints the active version of each of the tenant's policies, by name, one
per line: name, type, threshold, action, version, id. A retired policy is
not listed. New runs are judged by these; runs already started keep the
versions they started with.

  --tenant T            the tenant (required)
` + commonHelp + `
Examples:
  runproof policy list --tenant acme
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("policy list: unexpected argument %q (see runproof policy list -h)", args[0])
				}
				if err := checkTenant("policy list", *tenant); err != nil {
					return err
				}
				store, err := openRecorded(ctx, e)
				if err != nil {
					return err
				}
				defer store.Close()
				ps, err := service.New(store, service.Options{}).ActivePolicies(ctx, *tenant)
				if err != nil {
					return err
				}
				if len(ps) == 0 {
					fmt.Fprintf(e.stderr, "tenant %s has no active policy (add some with runproof policy apply)\n", *tenant)
					return nil
				}
				w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "NAME\tTYPE\tTHRESHOLD\tACTION\tVERSION\tID")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\tv%d\t%s\n", cell(p.Name), p.Type, policyLimit(p), p.Action, p.Version, p.ID)
				}
				return w.Flush()
			}
		},
	}
}

// policyLimit is what a policy holds a run to, in a word or so, on one
// line: an expression's line breaks and tabs are spaces here.
func policyLimit(p runproof.Policy) string {
	switch {
	case p.Type == runproof.PolicyStepTypeDenied:
		return cell(strings.Join(p.StepTypes, ","))
	case p.Type == runproof.PolicyExpression:
		return cell(strings.Join(strings.Fields(p.Expression), " "))
	}
	return p.Threshold
}

// cell is a name, as a table shows it: a character that prints as nothing
// (a zero-width space, a soft hyphen) as its code point, as the PDFs write
// it, so that "tool:shell<U+200B>" does not read as "tool:shell".
func cell(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) {
			fmt.Fprintf(&b, "<%U>", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func policyRetireCommand() *command {
	return &command{
		name:    "policy retire",
		summary: "retire a policy: new runs are no longer judged by it",
		help: `Usage: runproof policy retire --tenant T NAME|ID [flags]

Retires one of the tenant's active policies, named by its id or its name
(as policy list prints them; an id wins over another policy's name): runs
started from now on are not judged by it.
Runs already started keep the versions they started with. The policy's
versions stay on record, and a version that says it was retired is added
after them; applying a policy of the same name later makes it active
again, as its next version. The retirement is recorded as an audit event.

  --tenant T            the tenant the policy belongs to (required)
` + commonHelp + `
Examples:
  runproof policy retire --tenant acme cost-cap
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) != 1 || args[0] == "" {
					return usagef("policy retire: give the name or id of the one policy to retire (runproof policy list --tenant T shows them)")
				}
				if err := checkTenant("policy retire", *tenant); err != nil {
					return err
				}
				return retirePolicy(ctx, e, *tenant, args[0])
			}
		},
	}
}

func retirePolicy(ctx context.Context, e *env, tenant, which string) error {
	store, err := openRecorded(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	svc := service.New(store, service.Options{})
	active, err := svc.ActivePolicies(ctx, tenant)
	if err != nil {
		return err
	}
	// An active policy's id, else an active policy's name, else an id
	// (one retired already, which RetirePolicy says).
	id := which
	if !slices.ContainsFunc(active, func(p runproof.Policy) bool { return p.ID == which }) {
		for _, p := range active {
			if p.Name == which {
				id = p.ID
			}
		}
	}
	p, err := svc.RetirePolicy(ctx, tenant, id)
	if runproof.ErrorCode(err) == runproof.ENOTFOUND {
		return fmt.Errorf("tenant %s has no active policy named %q, nor a policy of that id (runproof policy list --tenant %s shows the active ones; one retired already is not among them)", tenant, which, tenant)
	} else if err != nil {
		return fmt.Errorf("cannot retire policy %q: %w", which, err)
	}
	if err := record(ctx, svc, cliEvent(tenant, runproof.AuditWrite, "policies.retire", "policy/"+p.ID,
		runproof.DecisionAllow, fmt.Sprintf("%q retired (v%d)", p.Name, p.Version))); err != nil {
		return fmt.Errorf("policy %s was retired but its audit event could not be recorded: %w", p.Name, err)
	}
	_, err = fmt.Fprintf(e.stdout, "retired %q (%s, %s) as v%d: runs started from now on are not judged by it\n", p.Name, p.Type, p.ID, p.Version)
	return err
}

// parsePolicies decodes a JSON or YAML list of policies, or a single one,
// refusing unknown fields as the API does.
func parsePolicies(file string, raw []byte) ([]service.PolicyInput, error) {
	body := bytes.TrimSpace(raw)
	ext := strings.ToLower(filepath.Ext(file))
	fromYAML := ext == ".yaml" || ext == ".yml" || len(body) > 0 && body[0] != '[' && body[0] != '{'
	if fromYAML {
		j, err := yamlToJSON(raw)
		if err != nil {
			return nil, err
		}
		body = j
	}
	if len(body) == 0 || string(body) == "null" {
		return nil, fmt.Errorf("holds no policies: write a list of policies (see runproof policy apply -h)")
	}
	var items []jsontext.Value
	if body[0] == '[' {
		if err := service.DecodeJSON(body, &items); err != nil {
			if f := runproof.ErrorFields(err); len(f) == 1 { // "1.name": the second policy's name
				if i, field, ok := strings.Cut(f[0].Field, "."); ok {
					if n, aerr := strconv.Atoi(i); aerr == nil {
						return nil, fmt.Errorf("policy %d: %s: %s", n+1, field, f[0].Message)
					}
				}
			}
			return nil, fmt.Errorf("%s", decodeMessage(err, "the file"))
		}
	} else {
		items = []jsontext.Value{body}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("holds an empty list: nothing to apply")
	}
	inputs := make([]service.PolicyInput, len(items))
	for i, item := range items {
		if err := service.DecodeJSON(item, &inputs[i]); err != nil {
			return nil, fmt.Errorf("policy %d: %s", i+1, decodeMessage(err, "the policy"))
		}
	}
	return inputs, nil
}
