package runproof

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Error codes. The HTTP layer maps each to one status in one place.
const (
	ECONFLICT     = "conflict"     // the request contradicts what is stored
	EFORBIDDEN    = "forbidden"    // authenticated, but the role lacks the permission
	EINTERNAL     = "internal"     // a bug or an outage; details are logged, never shown
	EINVALID      = "invalid"      // well-formed but invalid input
	EMALFORMED    = "malformed"    // the body cannot be parsed at all
	ENOTFOUND     = "not_found"    // absent, or owned by another tenant
	ETOOLARGE     = "too_large"    // over a size or count limit
	EUNAUTHORIZED = "unauthorized" // no valid API key
	EUNSUPPORTED  = "unsupported"  // a media type or encoding not accepted
	EUNAVAILABLE  = "unavailable"  // not done now (the server is stopping, its database busy, unreachable or full): retry
)

// FieldError names one input field at fault, as a JSON pointer-like path
// ("steps[3].cost_cents") and a message for the user.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is the one error type of runproof. Message is meant for users: it
// never holds internal details.
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
}

func (e *Error) Error() string {
	if len(e.Fields) <= 1 {
		return e.Message
	}
	return fmt.Sprintf("%s: %s: %s (and %d more)", e.Message, e.Fields[0].Field, e.Fields[0].Message, len(e.Fields)-1)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing the fields at fault.
func Invalid(fields ...FieldError) *Error {
	msg := "the request is invalid"
	if len(fields) == 1 {
		msg = fields[0].Field + ": " + fields[0].Message
	}
	return &Error{Code: EINVALID, Message: msg, Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain,
// EUNAVAILABLE for a database that cannot be reached (unreachable) or is
// busy and for a full disk (diskFull), EINTERNAL for any other non-nil
// error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	case unreachable(err), busy(err), diskFull(err):
		return EUNAVAILABLE
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err; internal errors get a
// generic text so that nothing internal leaks.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	case busy(err):
		return "the database is busy (another process holds its write lock): retry shortly"
	case unreachable(err):
		return "the database cannot be reached: retry shortly"
	case diskFull(err):
		return "the disk is full (the database's, or the data directory's): retry once space is freed"
	}
	return "internal error"
}

// SQLite's result codes runproof tells apart.
const (
	sqliteBusy = 5
	sqliteFull = 13
	// SQLITE_IOERR_SHMSIZE: the shared-memory file of the WAL could not
	// grow, as on a full disk when a process first opens the database.
	sqliteShmSize = 4874
)

// diskFull reports whether err says a disk is full: SQLite could not grow
// its database (SQLITE_FULL) or the shared memory of its WAL
// (SQLITE_IOERR_SHMSIZE), PostgreSQL its files (SQLSTATE 53100), or a
// file could not be written (ENOSPC). Nothing is wrong with the request,
// and it may be tried again once space is freed.
func diskFull(err error) bool {
	var coded interface{ Code() int }
	var state interface{ SQLState() string }
	return errors.Is(err, syscall.ENOSPC) ||
		errors.As(err, &coded) && (coded.Code()&0xff == sqliteFull || coded.Code() == sqliteShmSize) ||
		errors.As(err, &state) && state.SQLState() == "53100"
}

// busy reports whether err says that SQLite's write lock stayed held by
// another process (a command, a second serve) past the store's busy
// timeout: the database is there, but not for now. SQLite drivers give
// the result code as Code().
func busy(err error) bool {
	var coded interface{ Code() int }
	return errors.As(err, &coded) && coded.Code()&0xff == sqliteBusy
}

// unreachable reports whether err says the database went away rather than
// that something is wrong: the network failed, the connection was lost
// (in the middle of an answer too, an unexpected EOF; or before the query
// was sent, which drivers say as SafeToRetry()), the server is shutting
// down or starting (SQLSTATE classes 08 and 57P01–57P03, which drivers give
// as SQLState()), or it will not take us for now: too many connections
// (53300), our role or password refused (class 28, say once a password
// was changed on its side), or the database dropped or not there
// (57P04, 3D000). A file system's error (a full disk, say) is not: its
// syscall.Errno is a net.Error too, but of no network.
func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false // a net.Error too, but of the request, not the database
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		if _, local := netErr.(syscall.Errno); !local {
			return true
		}
	}
	var driverSays interface{ SafeToRetry() bool }
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &driverSays) && driverSays.SafeToRetry() {
		return true
	}
	var coded interface{ SQLState() string }
	if errors.As(err, &coded) {
		s := coded.SQLState()
		return strings.HasPrefix(s, "08") || strings.HasPrefix(s, "28") ||
			slices.Contains([]string{"57P01", "57P02", "57P03", "57P04", "53300", "3D000"}, s)
	}
	return false
}

// ErrorFields returns the field errors of err, if any.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// Backoff returns how long RetryUnavailable waits between its tries: about
// half a minute in all, what a database restart takes.
func Backoff() []time.Duration {
	return []time.Duration{250 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second}
}

// RetryUnavailable runs fn until it does not fail as EUNAVAILABLE (the
// database cannot be reached, or is full), waiting waits (Backoff) between
// tries, and returns its last error. It is for a write that must not be
// lost once its request is answered or its work done: an export's
// outcome. ctx ends the waiting.
func RetryUnavailable(ctx context.Context, waits []time.Duration, fn func() error) error {
	err := fn()
	for _, wait := range waits {
		if ErrorCode(err) != EUNAVAILABLE {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		err = fn()
	}
	return err
}

// Limits of the text fields people and agents fill in, in bytes.
const (
	MaxName  = 200  // a name: an agent's, a policy's, a key's, a reviewer's
	MaxGoal  = 4096 // a run's goal
	MaxNotes = 2000 // notes: an auditor's, a remediation's
)

// Fields collects the fields at fault in an input, in the order they are
// checked, so that one answer names them all.
type Fields []FieldError

// Add names a field at fault and why.
func (f *Fields) Add(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Text checks a one-line text field (CheckText) of at most max bytes.
func (f *Fields) Text(field, s string, max int) {
	f.text(field, s, max, CheckText)
}

// Prose checks a free-text field (CheckProse) of at most max bytes.
func (f *Fields) Prose(field, s string, max int) {
	f.text(field, s, max, CheckProse)
}

func (f *Fields) text(field, s string, max int, check func(string) error) {
	if len(s) > max {
		f.Add(field, "must be at most %d bytes", max)
	} else if err := check(s); err != nil {
		f.Add(field, "%s", err)
	}
}

// Err is the EINVALID error naming the fields at fault, nil when none is.
func (f Fields) Err() error {
	if len(f) == 0 {
		return nil
	}
	return Invalid(f...)
}
