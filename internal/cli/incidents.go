package cli

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

// maxIncidentsListed bounds --limit: a longer list is read a part at a
// time, with --offset.
const maxIncidentsListed = 1000

func incidentsListCommand() *command {
	return &command{
		name:    "incidents list",
		summary: "list a tenant's incidents, to export one",
		help: `Usage: runproof incidents list --tenant T [flags]

Prints the tenant's incidents, the latest violation first, one per line:
id, run, the policy broken and its type, the risk level, the violation
time (the agent's clock) and the remediation status. The id is what
runproof export --incident takes.

  --tenant T            the tenant (required)
  --run ID              only the incidents of this run
  --remediation S       only those whose remediation is S: ` + strings.Join(runproof.RemediationStatuses, ", ") + `
  --limit N             at most N incidents (default 20, at most 1000)
  --offset N            leave out the first N (to list the next ones)
` + commonHelp + `
Examples:
  runproof incidents list --tenant acme
  runproof incidents list --tenant acme --remediation pending --limit 100
  runproof incidents list --tenant acme --limit 1000 --offset 1000
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			tenant := fs.String("tenant", "", "tenant")
			run := fs.String("run", "", "run id")
			remediation := fs.String("remediation", "", "remediation status")
			limit := fs.Int("limit", 20, "most incidents listed")
			offset := fs.Int("offset", 0, "incidents left out")
			return func(ctx context.Context, e *env, args []string) error {
				switch {
				case len(args) > 0:
					return usagef("incidents list: unexpected argument %q (see runproof incidents list -h)", args[0])
				case *limit < 1 || *limit > maxIncidentsListed:
					return usagef("incidents list: --limit %d: give a number from 1 to %d", *limit, maxIncidentsListed)
				case *offset < 0:
					return usagef("incidents list: --offset %d: give 0 or more", *offset)
				case *remediation != "" && !slices.Contains(runproof.RemediationStatuses, *remediation):
					return usagef("incidents list: --remediation %q: give one of %s", *remediation, strings.Join(runproof.RemediationStatuses, ", "))
				case *run != "" && !runproof.ValidID(*run):
					return usagef("incidents list: --run %q: a run id %s", *run, runproof.IDRule)
				}
				if err := checkTenant("incidents list", *tenant); err != nil {
					return err
				}
				store, err := openRecorded(ctx, e)
				if err != nil {
					return err
				}
				defer store.Close()
				// One more than asked for tells whether more follow.
				incidents, err := service.New(store, service.Options{}).ListIncidents(ctx, runproof.ListIncidentsParams{
					TenantID: *tenant, RunID: *run, RemediationStatus: *remediation, Limit: *limit + 1, Offset: *offset})
				if err != nil {
					return err
				}
				switch {
				case len(incidents) == 0 && *offset > 0:
					fmt.Fprintf(e.stderr, "tenant %s has no incident that matches past the first %d\n", *tenant, *offset)
					return nil
				case len(incidents) == 0:
					fmt.Fprintf(e.stderr, "tenant %s has no incident that matches\n", *tenant)
					return nil
				}
				more := len(incidents) > *limit
				incidents = incidents[:min(len(incidents), *limit)]
				w := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(w, "INCIDENT\tRUN\tPOLICY\tTYPE\tRISK\tVIOLATION\tREMEDIATION")
				for _, in := range incidents {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.RunID, cell(in.PolicyName), in.ViolationType, in.RiskLevel,
						runproof.FormatTime(in.ViolationAt), in.RemediationStatus)
				}
				if err := w.Flush(); err != nil {
					return err
				}
				if more {
					fmt.Fprintf(e.stderr, "more incidents follow: list them with --offset %d\n", *offset+*limit)
				}
				return nil
			}
		},
	}
}
