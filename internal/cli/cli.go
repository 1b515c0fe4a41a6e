package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
)

// command is one subcommand. setup registers the command's own flags on fs
// and returns the function to run once they are parsed.
type command struct {
	name    string // as typed: "keys create"
	summary string
	help    string // usage, flags and examples, printed by -h
	setup   func(fs *flag.FlagSet) func(ctx context.Context, e *env, args []string) error
}

// env is what a command runs with.
type env struct {
	common
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// commands lists every subcommand, in the order help shows them.
func commands() []*command {
	return []*command{demoCommand(), serveCommand(), migrateCommand(), keysCreateCommand(), keysListCommand(), keysRevokeCommand(), keysRotateSigningCommand(),
		policyApplyCommand(), policyListCommand(), policyRetireCommand(), ingestCommand(), incidentsListCommand(), exportCommand(), verifyCommand(), ledgerVerifyCommand(), versionCommand()}
}

// Main runs the command line args (without the program name) and returns
// the exit status: 0 on success, 1 on a runtime error, 2 on a usage error
// (and 3 when verify could check a bundle's consistency only).
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainHelp())
		return 2
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-v") { // as other tools take it
		args = []string{"version"}
	}
	switch {
	case isHelp(args[0]):
		return help(args[1:], stdout, stderr)
	case len(args) == 2 && isHelp(args[1]) && groupHelp(args[0]) != "": // runproof keys -h
		fmt.Fprint(stdout, groupHelp(args[0]))
		return 0
	}
	cmd, rest, err := lookup(args)
	if err != nil {
		return fail(stderr, err)
	}

	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported as one line below, help by us
	var c common
	c.register(fs)
	run := cmd.setup(fs)
	onces := map[flag.Value]*once{} // aliases (-o, --out) share their variable's Value, and so its once
	fs.VisitAll(func(f *flag.Flag) {
		if _, repeatable := f.Value.(*stringList); !repeatable {
			if onces[f.Value] == nil {
				onces[f.Value] = &once{Value: f.Value}
			}
			f.Value = onces[f.Value]
		}
	})
	pos, err := parseArgs(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, cmd.help)
		return 0
	}
	if err != nil {
		return fail(stderr, usagef("%s: %v (see runproof %s -h)", cmd.name, err, cmd.name))
	}
	if err := emptyValue(fs); err != nil {
		return fail(stderr, err)
	}
	if err := c.check(); err != nil {
		return fail(stderr, err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return fail(stderr, err)
	}
	e := &env{common: c, log: log, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := run(ctx, e, pos); err != nil && c.logFormat == "json" && log.Enabled(ctx, slog.LevelError) {
		log.Error(oneLine(err)) // a line a JSON log pipeline reads too
		return exitStatus(err)
	} else if err != nil {
		return fail(stderr, err)
	}
	return 0
}

// valueFlags name a file, a directory or a time: given empty, as "--data
// $DIR" with DIR unset, they would silently fall back on a default (the
// current directory, the data directory's key, no checkpoint, the
// incident's day). Each with what to give ("": name a file, or a
// directory when its usage says so).
var valueFlags = []struct{ name, what string }{
	{"data", ""}, {"signing-key", ""}, {"checkpoint", ""}, {"out", ""}, {"o", ""}, {"model-prices", ""},
	{"period-start", "give an RFC 3339 time"}, {"period-end", "give an RFC 3339 time"},
}

// emptyValue refuses a value flag given an empty value, and --database:
// its default (SQLite in --data) would start an empty database as
// silently.
func emptyValue(fs *flag.FlagSet) error {
	if f := fs.Lookup("database"); f != nil && f.Value.String() == "" && flagGiven(fs, "database") {
		return usagef("%s: --database is empty: give a postgres:// URL, or leave --database out to use %s (SQLite in --data when it is not set either)",
			fs.Name(), DatabaseURLEnv)
	}
	for _, v := range valueFlags {
		if f := fs.Lookup(v.name); f != nil && f.Value.String() == "" && flagGiven(fs, v.name) {
			dashes := "--"
			if len(v.name) == 1 {
				dashes = "-"
			}
			what := cmp.Or(v.what, "name a file")
			if v.what == "" && strings.HasSuffix(f.Usage, "directory") { // --data, demo's --out
				what = "name a directory"
			}
			return usagef("%s: %s%s is empty: %s, or leave %s%s out", fs.Name(), dashes, v.name, what, dashes, v.name)
		}
	}
	return nil
}

// once makes a flag refuse a second value: "--tenant a ... --tenant b" is
// a mistake (a script's default and an override), and taking the last
// would act on the wrong tenant. Flags meant to repeat are stringLists.
type once struct {
	flag.Value
	set bool
}

func (o *once) Set(v string) error {
	if o.set {
		return errors.New("given twice: give it once")
	}
	o.set = true
	return o.Value.Set(v)
}

// IsBoolFlag keeps a boolean flag a switch (--all-signatures, no value).
func (o *once) IsBoolFlag() bool {
	b, ok := o.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// lookup finds the command named by the first one or two words of args.
func lookup(args []string) (*command, []string, error) {
	cmds := commands()
	for _, c := range cmds {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):], nil
		}
	}
	// "runproof keys" alone: name the subcommands it has.
	if subs := group(args[0]); len(subs) > 0 {
		names := make([]string, len(subs))
		for i, c := range subs {
			names[i] = "runproof " + c.name
		}
		what := "missing subcommand"
		if len(args) > 1 {
			what = fmt.Sprintf("unknown subcommand %q", args[1])
		}
		return nil, nil, usagef("%s: %s: use %s (see runproof %s -h)", args[0], what, strings.Join(names, ", "), args[0])
	}
	if strings.HasPrefix(args[0], "-") {
		return nil, nil, usagef("%s before a command: flags go after it, as in runproof COMMAND [flags]; the commands are %s", args[0], commandList())
	}
	return nil, nil, usagef("unknown command %q: the commands are %s, help", args[0], commandList())
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// group returns the subcommands of a group of commands ("keys"), if name
// is one.
func group(name string) []*command {
	var subs []*command
	for _, c := range commands() {
		if g, _, ok := strings.Cut(c.name, " "); ok && g == name {
			subs = append(subs, c)
		}
	}
	return subs
}

// groupHelp lists the subcommands of a group of commands, or is "" when
// name is no group.
func groupHelp(name string) string {
	subs := group(name)
	if len(subs) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: runproof %s SUBCOMMAND [flags]\n\nSubcommands:\n", name)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range subs {
		fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
	}
	_ = w.Flush() // a strings.Builder does not fail
	fmt.Fprintf(&b, "\nRun \"runproof %s SUBCOMMAND -h\" for a subcommand's flags and examples.\n", name)
	return b.String()
}

func commandList() string {
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	return strings.Join(names, ", ")
}

// help prints the overview, or a command's help when one is named.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && isHelp(args[len(args)-1]) { // "help keys -h"
		args = args[:len(args)-1]
	}
	if len(args) == 0 || len(args) == 1 && isHelp(args[0]) { // "help", "help -h"
		fmt.Fprint(stdout, mainHelp())
		return 0
	}
	if len(args) == 1 && groupHelp(args[0]) != "" {
		fmt.Fprint(stdout, groupHelp(args[0]))
		return 0
	}
	cmd, _, err := lookup(args)
	if err != nil {
		return fail(stderr, err)
	}
	fmt.Fprint(stdout, cmd.help)
	return 0
}

func mainHelp() string {
	var b strings.Builder
	b.WriteString(`runproof records what AI agents do, stops them when they break a policy,
and exports the evidence.

Usage: runproof COMMAND [flags]

Commands:
`)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "  help [CMD]\tthis text, or the help of one command\n")
	_ = w.Flush() // a strings.Builder does not fail
	b.WriteString(`
Flags every command takes:
` + commonHelp + `
Run "runproof COMMAND -h" for a command's flags and examples.
`)
	return b.String()
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// statusError is an outcome with an exit status of its own.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

// fail reports err as one line on stderr and returns the exit status.
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "runproof: %s\n", oneLine(err))
	return exitStatus(err)
}

// oneLine is err's message on one line: errors from drivers may span
// lines, and the contract is one.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// exitStatus is the exit status of a command that ended in err.
func exitStatus(err error) int {
	var u *usageError
	var st *statusError
	switch {
	case errors.As(err, &u):
		return 2
	case errors.As(err, &st):
		return st.status
	}
	return 1
}

// parseArgs parses flags wherever they stand among the positional
// arguments ("policy apply FILE --tenant t"), which the flag package alone
// stops at, and returns the positional arguments. After "--" everything is
// positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
