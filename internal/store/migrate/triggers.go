package migrate

import (
	"io/fs"
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
}

// triggerDDL finds, in order, the statements that create or drop a
// trigger, or drop a table (and so its triggers).
var triggerDDL = regexp.MustCompile(`(?is)\b(?:` +
	`CREATE\s+TRIGGER\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s.*?\bON\s+(\w+)` +
	`|DROP\s+TRIGGER\s+(?:IF\s+EXISTS\s+)?(\w+)` +
	`|DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(\w+))`)

// Triggers returns the triggers the migrations in fsys (see Latest) leave
// in a schema they are all applied to, by name: what the Up section of
// each creates and later ones do not drop.
func Triggers(fsys fs.FS) []Trigger {
	names, _ := fs.Glob(fsys, "*.sql") // the pattern is valid; names sort as versions do
	byName := map[string]Trigger{}
	for _, file := range names {
		src, err := fs.ReadFile(fsys, file)
		if err != nil {
			continue // an embedded file reads
		}
		for _, m := range triggerDDL.FindAllStringSubmatch(upSection(string(src)), -1) {
			switch {
			case m[1] != "":
				byName[m[1]] = Trigger{Name: m[1], Table: m[2], Migration: file}
			case m[3] != "":
				delete(byName, m[3])
			default:
				for name, t := range byName {
					if strings.EqualFold(t.Table, m[4]) {
						delete(byName, name)
					}
				}
			}
		}
	}
	out := make([]Trigger, 0, len(byName))
	for _, t := range byName {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b Trigger) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// upSection returns what a migration applies, without its comments: the
// lines between "-- +goose Up" and "-- +goose Down".
func upSection(src string) string {
	var b strings.Builder
	up := false
	for line := range strings.Lines(src) {
		switch trimmed := strings.TrimSpace(line); {
		case strings.HasPrefix(trimmed, "-- +goose Up"):
			up = true
		case strings.HasPrefix(trimmed, "-- +goose Down"):
			return b.String()
		case up:
			code, _, _ := strings.Cut(line, "--")
			b.WriteString(code)
			b.WriteString("\n")
		}
	}
	return b.String()
}

// Missing returns the triggers of want that are not among present, each
// named "table.trigger".
func Missing(want []Trigger, present []string) []Trigger {
	var out []Trigger
	for _, t := range want {
		if !slices.Contains(present, t.Table+"."+t.Name) {
			out = append(out, t)
		}
	}
	return out
}
