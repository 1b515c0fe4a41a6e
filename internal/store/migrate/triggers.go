package migrate

import (
	"io/fs"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// A Trigger is one the migrations leave in a schema: runproof's guards
// on the records it keeps (append-only, never deleted, changed only as
// runproof changes them) and the bookkeeping that goes with them. A
// database without one still works, but no longer refuses what the
// trigger refused.
type Trigger struct {
	Name      string
	Table     string
	Migration string // the file of the migration that creates it (the last one that does)
	Statement string // the statement that creates it, as goose sends it (without IF NOT EXISTS)
}

// Guards is what the migrations leave in a schema to guard runproof's
// records.
type Guards struct {
	Triggers []Trigger // by name
	// Functions are the bodies of the functions the migrations create
	// (PostgreSQL's triggers execute them), by name, as written between
	// their $$.
	Functions map[string]string
}

// The statements ReadGuards follows, each matched against one statement
// without its comments.
var (
	createTrigger  = regexp.MustCompile(`(?is)^CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s.*?\bON\s+(\w+)`)
	dropTrigger    = regexp.MustCompile(`(?is)^DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	dropTable      = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	createFunction = regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(`)
	dropFunction   = regexp.MustCompile(`(?is)^DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	// functionBody is the body of a function, in the statement as written.
	functionBody = regexp.MustCompile(`(?s)\$\$(.*)\$\$`)
	// ifNotExists is a clause SQLite does not keep in the statement it
	// stores.
	ifNotExists = regexp.MustCompile(`(?i)^(CREATE\s+TRIGGER\s+)IF\s+NOT\s+EXISTS\s+`)
)

// ReadGuards returns the triggers and functions the migrations in fsys
// (see Latest) leave in a schema they are all applied to: what the Up
// section of each creates and later ones do not drop.
func ReadGuards(fsys fs.FS) Guards {
	names, _ := fs.Glob(fsys, "*.sql") // the pattern is valid; names sort as versions do
	triggers := map[string]Trigger{}
	functions := map[string]string{}
	for _, file := range names {
		src, err := fs.ReadFile(fsys, file)
		if err != nil {
			continue // an embedded file reads
		}
		for _, stmt := range upStatements(string(src)) {
			code := WithoutComments(stmt)
			if m := createTrigger.FindStringSubmatch(code); m != nil {
				triggers[m[1]] = Trigger{Name: m[1], Table: m[2], Migration: file, Statement: ifNotExists.ReplaceAllString(stmt, "$1")}
			} else if m := dropTrigger.FindStringSubmatch(code); m != nil {
				delete(triggers, m[1])
			} else if m := dropTable.FindStringSubmatch(code); m != nil {
				maps.DeleteFunc(triggers, func(_ string, t Trigger) bool { return strings.EqualFold(t.Table, m[1]) })
			} else if m := createFunction.FindStringSubmatch(code); m != nil {
				if body := functionBody.FindStringSubmatch(stmt); body != nil {
					functions[m[1]] = body[1]
				}
			} else if m := dropFunction.FindStringSubmatch(code); m != nil {
				delete(functions, m[1])
			}
		}
	}
	out := slices.Collect(maps.Values(triggers))
	slices.SortFunc(out, func(a, b Trigger) int { return strings.Compare(a.Name, b.Name) })
	return Guards{Triggers: out, Functions: functions}
}

// upStatements splits what a migration applies (the lines between
// "-- +goose Up" and "-- +goose Down") into statements as goose does, and
// returns them as goose sends them: a statement starts at its first line
// that is not blank or a comment, and ends with a line whose code ends in
// ";", or is the whole of a block between "-- +goose StatementBegin" and
// "-- +goose StatementEnd".
func upStatements(src string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if stmt := strings.TrimSpace(b.String()); stmt != "" {
			out = append(out, stmt)
		}
		b.Reset()
	}
	up, block := false, false
	for line := range strings.Lines(src) {
		switch trimmed := strings.TrimSpace(line); {
		case strings.HasPrefix(trimmed, "-- +goose Up"):
			up = true
		case strings.HasPrefix(trimmed, "-- +goose Down"):
			return out
		case !up:
		case strings.HasPrefix(trimmed, "-- +goose StatementBegin"):
			flush()
			block = true
		case strings.HasPrefix(trimmed, "-- +goose StatementEnd"):
			block = false
			flush()
		case b.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")):
			// before a statement: not part of it
		default:
			b.WriteString(line)
			if !block && strings.HasSuffix(strings.TrimSpace(WithoutComments(line)), ";") {
				flush()
			}
		}
	}
	flush()
	return out
}

// WithoutComments returns SQL without its "--" comments (a "--" within a
// string literal is taken for one too: for reading runproof's own
// migrations, not for comparing).
func WithoutComments(sql string) string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		code, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), "--")
		b.WriteString(code)
		b.WriteString("\n")
	}
	return b.String()
}

// Normalize returns a statement as a database keeps it, to compare with
// another: its whitespace collapsed to single spaces, without the ";"
// that ends it or a comment after that. Comments within it count, so that
// nothing can be hidden after a "--" within a string.
func Normalize(stmt string) string {
	stmt = strings.TrimSpace(stmt)
	if i := strings.LastIndex(stmt, ";"); i >= 0 && strings.HasPrefix(strings.TrimSpace(stmt[i+1:]), "--") && !strings.Contains(stmt[i:], "\n") {
		stmt = stmt[:i+1] // a comment after the statement's end, on its last line
	}
	return strings.TrimSuffix(strings.Join(strings.Fields(stmt), " "), ";")
}

// Damaged returns the triggers of want a database does not have as the
// migrations create them: missing from have, which maps each trigger it
// has (named "table.trigger") to its definition there, or defined
// otherwise, as same says.
func Damaged[D any](want []Trigger, have map[string]D, same func(t Trigger, def D) bool) []Trigger {
	var out []Trigger
	for _, t := range want {
		if def, ok := have[t.Table+"."+t.Name]; !ok || !same(t, def) {
			out = append(out, t)
		}
	}
	return out
}
