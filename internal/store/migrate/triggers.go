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
	Statement string // the statement that creates it
}

// Guards is what the migrations leave in a schema to guard runproof's
// records.
type Guards struct {
	Triggers []Trigger // by name
	// Functions are the bodies of the functions the migrations create
	// (PostgreSQL's triggers execute them), by name.
	Functions map[string]string
}

// The statements ReadGuards follows, each matched against one statement
// without its comments.
var (
	createTrigger  = regexp.MustCompile(`(?is)^CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s.*?\bON\s+(\w+)`)
	dropTrigger    = regexp.MustCompile(`(?is)^DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	dropTable      = regexp.MustCompile(`(?is)^DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+)`)
	createFunction = regexp.MustCompile(`(?is)^CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)\s*\(.*?\$\$(.*)\$\$`)
	dropFunction   = regexp.MustCompile(`(?is)^DROP\s+FUNCTION\s+(?:IF\s+EXISTS\s+)?(\w+)`)
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
			if m := createTrigger.FindStringSubmatch(stmt); m != nil {
				triggers[m[1]] = Trigger{Name: m[1], Table: m[2], Migration: file, Statement: stmt}
			} else if m := dropTrigger.FindStringSubmatch(stmt); m != nil {
				delete(triggers, m[1])
			} else if m := dropTable.FindStringSubmatch(stmt); m != nil {
				maps.DeleteFunc(triggers, func(_ string, t Trigger) bool { return strings.EqualFold(t.Table, m[1]) })
			} else if m := createFunction.FindStringSubmatch(stmt); m != nil {
				functions[m[1]] = m[2]
			} else if m := dropFunction.FindStringSubmatch(stmt); m != nil {
				delete(functions, m[1])
			}
		}
	}
	out := slices.Collect(maps.Values(triggers))
	slices.SortFunc(out, func(a, b Trigger) int { return strings.Compare(a.Name, b.Name) })
	return Guards{Triggers: out, Functions: functions}
}

// upStatements splits what a migration applies (the lines between
// "-- +goose Up" and "-- +goose Down") into statements as goose does: a
// statement ends with a line ending in ";", or is the whole of a block
// between "-- +goose StatementBegin" and "-- +goose StatementEnd". Each
// is returned without its comments.
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
		default:
			code := withoutComment(line)
			b.WriteString(code)
			b.WriteString("\n")
			if !block && strings.HasSuffix(strings.TrimSpace(code), ";") {
				flush()
			}
		}
	}
	flush()
	return out
}

// withoutComment returns a line of SQL without its "--" comment.
func withoutComment(line string) string {
	code, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), "--")
	return code
}

// Normalize returns SQL without comments, with its whitespace collapsed
// to single spaces and without a final ";": two statements that differ
// only there do the same.
func Normalize(sql string) string {
	var b strings.Builder
	for line := range strings.Lines(sql) {
		b.WriteString(withoutComment(line))
		b.WriteString(" ")
	}
	return strings.TrimSuffix(strings.Join(strings.Fields(b.String()), " "), ";")
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
