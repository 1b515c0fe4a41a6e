package cli

import (
	"context"
	"flag"
	"fmt"
)

func migrateCommand() *command {
	return &command{
		name:    "migrate",
		summary: "apply database schema migrations",
		help: `Usage: runproof migrate [flags]

Applies the schema migrations the database lacks. Every command does this
when it opens the database; migrate does only that, e.g. before a deploy.

` + commonHelp + `
Examples:
  runproof migrate --data /var/lib/runproof
  runproof migrate --database postgres://runproof@db/runproof
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("migrate: unexpected argument %q (see runproof migrate -h)", args[0])
				}
				store, err := openDatabase(ctx, e.common)
				if err != nil {
					return err
				}
				defer store.Close()
				before, err := migrateStore(ctx, e, store)
				if err != nil {
					return err
				}
				after := store.LatestSchema()
				if after == before {
					_, err = fmt.Fprintf(e.stdout, "schema up to date (%s): version %d, the latest this runproof knows\n", e.engine(), after)
				} else {
					_, err = fmt.Fprintf(e.stdout, "schema migrated (%s): from version %d to %d, the latest this runproof knows\n", e.engine(), before, after)
				}
				return err
			}
		},
	}
}
