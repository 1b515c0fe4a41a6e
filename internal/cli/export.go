package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/runproof/runproof/internal/atomicfile"
	"github.com/runproof/runproof/internal/export"
	"github.com/runproof/runproof/internal/ledger"
	"github.com/runproof/runproof/internal/runproof"
	"github.com/runproof/runproof/internal/service"
)

func exportCommand() *command {
	return &command{
		name:    "export",
		summary: "export a bundle of a run or an incident to a file",
		help: `Usage: runproof export --tenant T (--incident ID | --run ID) [flags]

Builds a bundle, records the export in the tenant's export record (origin
HUMAN, source cli) and writes the artifact to --out. The file's sha256 is the
checksum of the record. A long export logs every 5 seconds that it is
still running.

  --tenant T            the tenant (required)
  --incident ID         the incident to export
  --run ID              the run to export (its incident, if any, is included)
  --type TYPE           evidence, soc2 or executive_debrief (default evidence;
                        --bundle is the same flag)
  --format F            json, csv, pdf or zip (a signed ZIP holding the bundle,
                        its steps, its report and a manifest) (default json)
  -o, --out FILE        where to write, making its directory if need be; "-"
                        for stdout (default BUNDLE_ID.F in the current
                        directory). A new file gets mode 0644 less the umask
                        (0600 with --include-content: prompts and answers
                        are the owner's alone); a file replaced keeps its mode
                        (its owner's part alone with --include-content)
  --reason TEXT         why the export is made (kept in the bundle and record)
  --prepared-for NAME   the reader of an executive debrief
  --prepared-by NAME    its author (default: your user name)
  --classification C    a debrief's INTERNAL, CONFIDENTIAL (default) or PUBLIC
                        (--prepared-for, --prepared-by and --classification
                        are accepted with any bundle type; only a debrief
                        keeps and shows them)
  --period-start TIME   the start of a SOC 2 bundle's compliance period,
                        RFC 3339 (default: the incident's UTC day; for a run
                        without incident, none, or the run start's day when
                        only --period-end is given)
  --period-end TIME     its end (default as --period-start). The period must
                        hold the incident's detection (the run's start); an
                        end before the year 2000 is taken for a mistyped year;
                        both are refused for other bundle types
  --no-steps            leave the steps out (their count and totals stay)
  --include-content     include each step's content, not only its digest
` + commonHelp + `
Exit status: 0 when exported, 2 when a flag is wrong (a run or incident
the tenant does not have included), 1 when the export failed.

Examples:
  runproof export --tenant acme --incident 0195… --type soc2 --format zip -o soc2.zip
  runproof export --tenant acme --incident 0195… --type executive_debrief --format pdf --prepared-for CTO
  runproof export --tenant acme --run r-1 --format csv --out r-1.csv
`,
		setup: func(fs *flag.FlagSet) func(context.Context, *env, []string) error {
			var in export.Input
			var tenant, out string
			var noSteps bool
			fs.StringVar(&tenant, "tenant", "", "tenant")
			fs.StringVar(&in.IncidentID, "incident", "", "incident id")
			fs.StringVar(&in.RunID, "run", "", "run id")
			fs.StringVar((*string)(&in.BundleType), "type", "evidence", "bundle type")
			fs.StringVar((*string)(&in.BundleType), "bundle", "evidence", "bundle type (same as --type)")
			fs.StringVar((*string)(&in.Format), "format", "json", "format")
			fs.StringVar(&out, "out", "", "output file")
			fs.StringVar(&out, "o", "", "output file (same as --out)")
			fs.StringVar(&in.ExportReason, "reason", "", "export reason")
			fs.StringVar(&in.PreparedFor, "prepared-for", "", "reader of a debrief")
			fs.StringVar(&in.PreparedBy, "prepared-by", "", "author of a debrief")
			fs.StringVar(&in.Classification, "classification", "", "debrief classification")
			fs.StringVar(&in.PeriodStart, "period-start", "", "compliance period start")
			fs.StringVar(&in.PeriodEnd, "period-end", "", "compliance period end")
			fs.BoolVar(&noSteps, "no-steps", false, "leave steps out")
			fs.BoolVar(&in.IncludeContent, "include-content", false, "include step content")
			return func(ctx context.Context, e *env, args []string) error {
				if len(args) > 0 {
					return usagef("export: unexpected argument %q (see runproof export -h)", args[0])
				}
				if err := checkTenant("export", tenant); err != nil {
					return err
				}
				if (in.IncidentID == "") == (in.RunID == "") {
					return usagef("export: give --incident ID or --run ID, one of them (see runproof export -h)")
				}
				in.IncludeRawSteps = new(!noSteps)
				return runExport(ctx, e, tenant, in, out)
			}
		},
	}
}

func runExport(ctx context.Context, e *env, tenant string, in export.Input, out string) error {
	store, err := openRecorded(ctx, e)
	if err != nil {
		return err
	}
	defer store.Close()
	ex, err := openExporter(ctx, e, store)
	if err != nil {
		return err
	}
	if err := checkOut(out); err != nil {
		return err
	}
	exporter := ex.exporter
	recoverExports(ctx, e, exporter, tenant)
	seal(ctx, e, ex.ledger, tenant) // the steps exported are in the ledger before the bundle is signed
	who := export.Requester{ID: operator(), Origin: runproof.OriginHuman, SourceComponent: "cli", Name: userName()}
	stop := stillRunning(e, "export still running", 5*time.Second) // a run of a million steps takes a while
	rec, err := exporter.Export(ctx, tenant, who, in)
	stop()
	if rec.ID != "" { // made, or failed and recorded: as an API export, an audit event says so
		ev := cliEvent(tenant, runproof.AuditWrite, "export", "export/"+rec.ID, runproof.DecisionAllow,
			fmt.Sprintf("%s %s of %s: %s", rec.BundleType, rec.Format, subject(rec), rec.Status))
		if aerr := record(ctx, service.New(store, service.Options{}), ev); aerr != nil {
			e.log.Warn("the export's audit event was not stored", slog.String("export_id", rec.ID), slog.Any("error", aerr))
		}
	}
	if err != nil {
		return exportFailure(err)
	}
	if out == "" {
		out = rec.BundleID + "." + string(rec.Format)
	}
	if err := deliver(ctx, exporter, rec, out, outMode(in), e.stdout); err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		return fmt.Errorf("export %s was made and is recorded as %s, but not written to %s: %w", rec.ID, rec.Status, out, err)
	}
	if out != "-" {
		fmt.Fprintf(e.stderr, "wrote %s: %s %s of %s, %d bytes, %s (export %s)\n",
			out, rec.BundleType, rec.Format, subject(rec), rec.SizeBytes, rec.Checksum, rec.ID)
	}
	seal(ctx, e, ex.ledger, tenant)
	return nil
}

// stillRunning logs msg with the time taken every interval until the
// function it returns is called, so that long work does not look hung.
func stillRunning(e *env, msg string, interval time.Duration) (stop func()) {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		every(ctx, interval, false, func() { e.log.Info(msg, slog.Duration("elapsed", time.Since(start).Round(time.Second))) })
	})
	return func() { cancel(); wg.Wait() } // no line of it after stop returns
}

// recoverExports ends what an interrupted command or server left
// unfinished in the tenant's exports (Exporter.Recover), as serve does
// every few minutes. A failure is logged: the export goes on.
func recoverExports(ctx context.Context, e *env, exporter *export.Exporter, tenant string) {
	n, err := exporter.Recover(ctx, tenant)
	switch {
	case err != nil:
		e.log.Warn("interrupted exports not recovered", slog.String("tenant_id", tenant), slog.Any("error", err))
	case n > 0:
		e.log.Warn("interrupted exports recorded as failed", slog.String("tenant_id", tenant), slog.Int("exports", n))
	}
}

// seal puts the tenant's audit events that wait for the ledger into it,
// then its runs' new steps, as serve does every 30 seconds: commands run
// without a server leave them to the next export. The export is done
// whatever happens here: a failure is logged, and they keep waiting.
func seal(ctx context.Context, e *env, led *ledger.Ledger, tenant string) {
	n, err := led.SealTenant(ctx, tenant)
	switch {
	case err != nil:
		e.log.Warn("the ledger is behind; the next export or serve will catch it up", slog.String("tenant_id", tenant), slog.Any("error", err))
	case n > 0:
		e.log.Debug("put into the ledger", slog.String("tenant_id", tenant), slog.Int("entries", n))
	}
}

// deliver copies a completed export's artifact to out ("-": w), a new file
// of mode perm (less the umask), and records the delivery.
func deliver(ctx context.Context, exporter *export.Exporter, rec runproof.Export, out string, perm fs.FileMode, w io.Writer) error {
	rec, art, err := exporter.Open(ctx, rec.TenantID, rec.ID)
	if err != nil {
		return err
	}
	defer art.Close()
	if out == "-" {
		if _, err := io.Copy(w, art); err != nil {
			return err
		}
	} else if err := writeOut(out, art, perm); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) { // names a temporary file, not out
			err = pe.Err
		}
		return err
	}
	return exporter.Delivered(ctx, rec)
}

// checkOut refuses, before anything is exported, an --out that cannot be
// written: a directory, or a file in a directory this process may not
// write to ("" and "-" are not files).
func checkOut(out string) error {
	if out == "" || out == "-" {
		return nil
	}
	if fi, err := os.Stat(out); err == nil && fi.IsDir() {
		return usagef("export: --out %s is a directory: name a file in it", out)
	} else if err == nil && !fi.Mode().IsRegular() {
		return nil // a device or a pipe, written in place
	}
	dir := filepath.Dir(out)
	for { // the nearest directory that exists, where out's are made
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	probe, err := os.CreateTemp(dir, ".runproof-out-*")
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("export: cannot write --out %s (in %s: %v): name a file in a directory you can write to", out, dir, err)
	}
	probe.Close()
	return os.Remove(probe.Name())
}

// writeOut writes r to --out: a regular file, new or not, atomically
// (writeFileAtomic), through a symbolic link to what it links to, and
// anything else (a device, a pipe, /dev/stdout) in place, never replaced.
func writeOut(name string, r io.Reader, perm fs.FileMode) error {
	fi, err := os.Stat(name) // follows links
	switch {
	case err != nil: // a new file
		return writeFileAtomic(name, nil, r, perm)
	case fi.IsDir():
		return fmt.Errorf("%s is a directory: name a file", name)
	case !fi.Mode().IsRegular():
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if target, err := filepath.EvalSymlinks(name); err == nil {
		name = target // replace the file the link names, not the link
	}
	return writeFileAtomic(name, fi, r, perm)
}

// writeFileAtomic writes r to name, making its directory first: a new file
// with mode perm less the umask, a file replaced (when not nil) keeping
// its mode, but for others when perm is its owner's alone. A failure
// never leaves a partial file under name.
func writeFileAtomic(name string, replaced fs.FileInfo, r io.Reader, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := atomicfile.Create(name, perm)
	if err != nil {
		return err
	}
	defer f.Abort() // a no-op once committed
	if replaced != nil {
		mode := replaced.Mode().Perm()
		if perm&0o077 == 0 { // the owner's alone, whatever the file was
			mode &^= 0o077
		}
		if err := f.Chmod(mode); err != nil {
			return err
		}
	}
	if _, err := io.Copy(f, r); err != nil {
		return err
	}
	return f.Commit()
}

// outMode is the mode of a new file an export is written to: its owner's
// alone when it holds the steps' content (prompts and answers), as the
// data directory keeps it.
func outMode(in export.Input) fs.FileMode {
	if in.IncludeContent {
		return 0o600
	}
	return 0o644
}

// exportFailure words an export error for the command line.
func exportFailure(err error) error {
	var failed *export.Failed
	if errors.As(err, &failed) {
		return failed.UserError()
	}
	switch runproof.ErrorCode(err) {
	case runproof.EINVALID:
		return usagef("export: %s", flagWords(fieldMessage(err)))
	case runproof.ENOTFOUND:
		return fmt.Errorf("export: %s", runproof.ErrorMessage(err))
	}
	return err
}

// exportFlags are the flags behind the fields of an export request.
var exportFlags = map[string]string{"bundle_type": "--type", "format": "--format", "run_id": "--run",
	"incident_id": "--incident", "period_start": "--period-start", "period_end": "--period-end",
	"export_reason": "--reason", "classification": "--classification", "prepared_for": "--prepared-for",
	"prepared_by": "--prepared-by"}

// snakeWord is a field name with an underscore, wherever it stands in a
// message; one without ("format") is a plain word but where it names the
// field at fault.
var snakeWord = regexp.MustCompile(`\b[a-z]+(_[a-z]+)+\b`)

// flagWords names the flags behind the fields of an export request, in
// a message of fields at fault ("field: message; field: message").
func flagWords(msg string) string {
	parts := strings.Split(msg, "; ")
	for i, p := range parts {
		if field, rest, ok := strings.Cut(p, ": "); ok && exportFlags[field] != "" {
			p = exportFlags[field] + ": " + rest
		}
		parts[i] = snakeWord.ReplaceAllStringFunc(p, func(w string) string { return cmp.Or(exportFlags[w], w) })
	}
	return strings.Join(parts, "; ")
}

// subject names what an export covers.
func subject(rec runproof.Export) string {
	if rec.IncidentID != "" {
		return "incident " + rec.IncidentID
	}
	return "run " + rec.RunID
}

// operator is who runs the command, as the export record names them.
func operator() string {
	if name := userName(); name != "" {
		return "cli:" + name
	}
	return "cli"
}

// userName is the name of the user who runs the command, "" when unknown.
func userName() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}
