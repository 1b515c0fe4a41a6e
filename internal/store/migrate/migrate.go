// Package migrate applies a store's embedded schema migrations, the same
// way for every engine.
package migrate

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
)

// VersionTable is the table in which goose records the schema's version.
const VersionTable = goose.DefaultTablename

// ownTables are tables the first migration of either engine makes, which
// every runproof schema has: a versioned database without them is another
// program's that goose keeps too.
var ownTables = []string{"policy_snapshots", "runs", "steps"}

// Up applies the migrations of p not yet applied. It refuses a database
// whose schema is newer than the migrations p holds: an older runproof
// would misread it; and another program's, told by its tables (tables, as
// the store lists them): some without runproof's schema, or a schema
// version without runproof's tables.
func Up(ctx context.Context, p *goose.Provider, tables []string) error {
	others := slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return t == VersionTable })
	slices.Sort(others)
	foreign := fmt.Errorf("the database holds tables that are not runproof's (%s) and no runproof schema: it is another program's; "+
		"give runproof an empty database, or its own", strings.Join(others[:min(len(others), 5)], ", "))
	if len(others) > 0 && !slices.Contains(tables, VersionTable) {
		return foreign // before goose adds its table to it
	}
	have, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	// (tables may have been listed before another process migrated: none
	// then, which says nothing.)
	own := !slices.ContainsFunc(ownTables, func(t string) bool { return !slices.Contains(tables, t) })
	if len(others) > 0 && (have == 0 || !own) {
		return foreign
	}
	sources := p.ListSources()
	if known := sources[len(sources)-1].Version; have > known {
		return fmt.Errorf("the database schema is at version %d, newer than this runproof knows (%d): run a newer runproof", have, known)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Latest returns the version of the newest migration in fsys, whose files
// are named NNN_what.sql: the version Up brings a schema to.
func Latest(fsys fs.FS) int64 {
	names, _ := fs.Glob(fsys, "*.sql") // the pattern is valid
	var latest int64
	for _, name := range names {
		num, _, _ := strings.Cut(name, "_")
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			latest = max(latest, v)
		}
	}
	return latest
}
