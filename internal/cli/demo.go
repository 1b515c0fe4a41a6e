package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runproof/runproof/internal/demo"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/signing"
)

func demoCommand() *command {
	return &command{
		name:    "demo",
		summary: "seed a demo tenant and export its bundles",
		help: `Usage: runproof demo [--out DIR] [flags]

Seeds the tenant "demo" with six policies (one of each type) and yesterday's
activity of five agents: 36 runs, five of which break a policy and are
stopped. Then exports the evidence, SOC 2 and executive debrief bundles of
the costliest incident in every format (JSON, CSV, PDF, signed ZIP) into
--out, verifies the ZIPs with the public key alone (written next to them as
signing-key.pub.pem), and prints what it wrote.
Running it again on the same data directory exports again without
re-seeding.

  --out DIR             where to write the exports (default ./runproof-demo)
` + commonHelp + `
Examples:
  runproof demo
  runproof demo --data /tmp/rp --out /tmp/rp-demo
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			out := fs.String("out", "./runproof-demo", "output directory")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("demo: unexpected argument %q (see runproof demo -h)", args[0])
				}
				if *out == "" {
					return usagef("demo: --out must name a directory")
				}
				return runDemo(ctx, e, *out)
			}
		},
	}
}

func runDemo(ctx context.Context, e *env, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil { // before seeding anything
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return usagef("demo: cannot make --out %s (%v): name a directory, or where one can be made", out, err)
	}
	store, err := openStore(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	ex, err := openExporter(ctx, e, store)
	if err != nil {
		return err
	}
	exporter := ex.exporter

	seeded, err := demo.Seeded(ctx, store, demo.Tenant)
	if err != nil {
		return err
	}
	var showcase runproof.Incident
	if seeded {
		fmt.Fprintf(e.stdout, "The demo tenant is already seeded in %s; exporting again.\n", e.where())
		if showcase, err = demo.ShowcaseIncident(ctx, store, demo.Tenant); err != nil {
			return err
		}
	} else {
		day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
		fmt.Fprintf(e.stdout, "Seeding the demo tenant in %s with a day of agent activity (%s)…\n", e.where(), day.Format(time.DateOnly))
		res, err := demo.Seed(ctx, demo.Options{Store: store, Day: day})
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "  %d policies, %d runs, %d steps, %d incidents:\n", res.Policies, res.Runs, res.Steps, len(res.Incidents))
		for _, inc := range res.Incidents {
			fmt.Fprintf(e.stdout, "    %-12s step %-3d %-40s %s\n", inc.RunID, inc.InflectionStepIndex, inc.PolicyName, breach(inc))
		}
		showcase = res.Showcase
	}

	recoverExports(ctx, e, exporter, demo.Tenant)
	seal(ctx, e, ex.ledger, demo.Tenant) // the steps exported are in the ledger before the bundles are signed (the demo records no audit event to seal after)
	fmt.Fprintf(e.stdout, "\nExporting incident %s (%s, run %s) into %s:\n\n", showcase.ID, showcase.PolicyName, showcase.RunID, out)
	who := export.Requester{ID: "system", Origin: runproof.OriginSystem, SourceComponent: "demo"}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUNDLE\tFORMAT\tFILE\tBYTES\tSHA-256")
	var zips []string
	for _, bundle := range []runproof.BundleType{runproof.BundleEvidence, runproof.BundleSOC2, runproof.BundleExecutiveDebrief} {
		for _, format := range exporter.Formats() {
			in := export.Input{IncidentID: showcase.ID, BundleType: bundle, Format: format,
				ExportReason: "runproof demo", PreparedFor: "Chief Technology Officer", IncludeContent: true}
			rec, err := exporter.Export(ctx, demo.Tenant, who, in)
			if err != nil {
				return exportFailure(err)
			}
			name := filepath.Join(out, strings.ReplaceAll(string(bundle), "_", "-")+"."+string(format))
			if err := deliver(ctx, exporter, rec, name, outMode(in), nil); err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s…\n", bundle, format, name, rec.SizeBytes, strings.TrimPrefix(rec.Checksum, runproof.DigestPrefix)[:16])
			if format == runproof.FormatZIP {
				zips = append(zips, name)
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	// Check the ZIPs as an auditor would, with the public key alone.
	key := ex.keys.Active()
	pub := filepath.Join(out, "signing-key.pub.pem")
	if err := writeFileAtomic(pub, nil, bytes.NewReader(signing.PublicPEM(key.Public())), 0o644); err != nil {
		return fmt.Errorf("cannot write %s: %w", pub, err)
	}
	for _, zip := range zips {
		rep, err := checkZIP(ctx, zip, key.Public(), false, io.Discard)
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("demo: interrupted while checking %s: the exports are made, not checked (runproof verify checks them)", zip)
		}
		if !rep.Authentic() {
			return fmt.Errorf("demo: %s does not verify: %v", zip, rep.Failure)
		}
	}
	fmt.Fprintf(e.stdout, "\nVerified %d ZIPs against %s (%s): file list, digests, signature, bundle hash, totals, ledger proof.\n"+
		"Check one yourself: runproof verify %s --key %s\n", len(zips), pub, key.ID, zips[0], pub)
	fmt.Fprintf(e.stdout, "\nEvery export is in the tenant's export record. To browse the data:\n"+
		"%s  runproof serve %s&\n  KEY=$(runproof keys create %s--tenant demo --role auditor)\n"+
		"  curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:8080/api/v1/logs/audit/exports\n", e.databaseEnv(), e.flags(), e.flags())
	return nil
}

// breach says in a few words how an incident's policy was broken.
func breach(inc runproof.Incident) string {
	switch inc.ViolationType {
	case runproof.PolicyStepTypeDenied:
		return "used " + inc.ActualValue
	case runproof.PolicyExpression:
		return "expression matched"
	}
	return fmt.Sprintf("%s, limit %s (%s)", inc.ActualValue, inc.ThresholdValue, strings.TrimSuffix(string(inc.ViolationType), "_limit"))
}
