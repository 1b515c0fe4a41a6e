package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/runproof/runproof/internal/runproof"
)

// checkTenant refuses a missing or malformed --tenant as a usage error, with
// the rule the service applies to tenant ids.
func checkTenant(cmd, tenant string) error {
	if tenant == "" {
		return usagef("%s: --tenant is required (the tenant the records belong to)", cmd)
	}
	if !runproof.ValidTenantID(tenant) {
		return usagef("%s: --tenant %s", cmd, runproof.TenantIDRule)
	}
	return nil
}

// fieldMessage renders a validation error on one line as "field: message"
// for each field at fault, up to maxFieldMessages of them, then how many
// more there are.
func fieldMessage(err error) string {
	fields := runproof.ErrorFields(err)
	if len(fields) == 0 {
		return err.Error()
	}
	parts := make([]string, 0, min(len(fields), maxFieldMessages))
	for _, f := range fields[:min(len(fields), maxFieldMessages)] {
		parts = append(parts, f.Field+": "+f.Message)
	}
	msg := strings.Join(parts, "; ")
	if len(fields) > maxFieldMessages {
		msg += fmt.Sprintf(" (and %d more)", len(fields)-maxFieldMessages)
	}
	return msg
}

// maxFieldMessages is how many fields at fault a message names.
const maxFieldMessages = 5

// decodeMessage words an error of service.DecodeJSON, which speaks of an
// HTTP body, for the input at hand ("the line", "the file").
func decodeMessage(err error, what string) string {
	return strings.Replace(fieldMessage(err), "the body", what, 1)
}

// readInput reads the named file, or stdin for "-", whole, up to
// maxInputFile.
func readInput(ctx context.Context, name string, stdin io.Reader) ([]byte, error) {
	f, err := openInput(ctx, name, stdin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err == nil && len(b) > maxInputFile {
		err = fmt.Errorf("%s is over %d MiB: split it", inputName(name), maxInputFile>>20)
	}
	return b, err
}

// maxInputFile bounds the files read whole (policies).
const maxInputFile = 16 << 20

// openInput opens the named file, or stdin for "-". Reading stdin ends
// with ctx's error once ctx is done (Ctrl-C), even while it waits for
// input that may never come.
func openInput(ctx context.Context, name string, stdin io.Reader) (io.ReadCloser, error) {
	if name == "-" {
		pr, pw := io.Pipe()
		go func() { // left waiting on stdin when ctx ends first; the command is ending
			_, err := io.Copy(pw, stdin)
			pw.CloseWithError(err)
		}()
		context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
		return pr, nil
	}
	f, err := os.Open(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usagef("%s: no such file", name)
	}
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		f.Close()
		return nil, usagef("%s is a directory: name a file (or - for stdin)", name)
	}
	return f, nil
}

// inputName is how errors name an input file.
func inputName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}
