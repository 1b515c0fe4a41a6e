package cli

import (
	"context"
	"flag"
	"fmt"
	"runtime/debug"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the version",
		help: `Usage: runproof version

Prints the module version runproof was built from ("devel" for a build
from a source checkout).
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("version: takes no arguments, not %q", args[0])
				}
				_, err := fmt.Fprintln(e.stdout, "runproof", version())
				return err
			}
		},
	}
}

func version() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}
