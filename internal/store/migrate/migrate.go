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
const VersionTable = "goose_db_version"

// Up applies the migrations of p not yet applied. It refuses a database
// whose schema is newer than the migrations p holds: an older runproof
// would misread it; and one without runproof's schema that holds tables
// (those of the database, as the store lists them): another program's.
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
	if have == 0 && len(others) > 0 {
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
