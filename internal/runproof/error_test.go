package runproof

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sqlStateError is an error as a database driver gives it (pgconn.PgError).
type sqlStateError string

func (e sqlStateError) Error() string    { return "SQLSTATE " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

// connClosed is a driver's error for a connection closed before the query
// was sent (pgconn's "conn closed").
type connClosed struct{}

func (connClosed) Error() string     { return "conn closed" }
func (connClosed) SafeToRetry() bool { return true }

// TestUnreachable: a database that cannot be reached is unavailable (to
// retry), not an internal error; a request's own deadline is not.
func TestUnreachable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for err, want := range map[error]string{
		fmt.Errorf("list runs: %w", refused):              EUNAVAILABLE,
		fmt.Errorf("get run: %w", driver.ErrBadConn):      EUNAVAILABLE,
		fmt.Errorf("get run: %w", sqlStateError("57P01")): EUNAVAILABLE, // admin_shutdown
		fmt.Errorf("get run: %w", sqlStateError("08006")): EUNAVAILABLE, // connection_failure
		fmt.Errorf("get run: %w", sqlStateError("53300")): EUNAVAILABLE, // too_many_connections
		fmt.Errorf("get run: %w", sqlStateError("28P01")): EUNAVAILABLE, // invalid_password
		fmt.Errorf("get run: %w", sqlStateError("3D000")): EUNAVAILABLE, // invalid_catalog_name: the database dropped
		fmt.Errorf("get run: %w", sqlStateError("57P04")): EUNAVAILABLE, // database_dropped
		fmt.Errorf("insert: %w", sqlStateError("23505")):  EINTERNAL,    // unique_violation
		fmt.Errorf("list steps: %w", io.ErrUnexpectedEOF): EUNAVAILABLE, // the connection cut mid-answer
		fmt.Errorf("get run: %w", connClosed{}):           EUNAVAILABLE,
		// A file system's errors are no outage of the database (a full disk
		// is unavailable for its own reason: TestDiskFull).
		fmt.Errorf("store: %w", &os.PathError{Op: "open", Path: "x", Err: syscall.EROFS}):                                      EINTERNAL,
		fmt.Errorf("dial: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}): EUNAVAILABLE,
		fmt.Errorf("get run: %w", context.DeadlineExceeded):                                                                    EINTERNAL,
		Errorf(ENOTFOUND, "no such run"):                                                                                       ENOTFOUND,
	} {
		if got := ErrorCode(err); got != want {
			t.Errorf("ErrorCode(%v) = %s, want %s", err, got, want)
		}
	}
	if msg := ErrorMessage(refused); msg != "the database cannot be reached: retry shortly" {
		t.Errorf("message %q", msg)
	}
}

// TestRetryUnavailable: a write is tried again while the database cannot
// be reached, and not after any other outcome.
func TestRetryUnavailable(t *testing.T) {
	waits := []time.Duration{time.Millisecond, time.Millisecond, time.Millisecond}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		fails     int
		err       error
		calls     int
		succeeded bool
	}{
		{2, refused, 3, true},                              // back on the third try
		{9, refused, 4, false},                             // gives up after the waits
		{1, Errorf(ECONFLICT, "already stored"), 1, false}, // not retried
	} {
		calls := 0
		err := RetryUnavailable(context.Background(), waits, func() error {
			calls++
			if calls <= c.fails {
				return c.err
			}
			return nil
		})
		if calls != c.calls || (err == nil) != c.succeeded {
			t.Errorf("failing %d times with %v: %d calls, %v", c.fails, c.err, calls, err)
		}
	}
}

// TestDiskFull: a file or a database that cannot grow for want of space
// is unavailable for now, said as such; other file errors are internal.
func TestDiskFull(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("write artifact: %w", &os.PathError{Op: "write", Path: "/data/artifacts/x.zip", Err: syscall.ENOSPC}),
		fmt.Errorf("append steps: %w", sqlStateError("53100")), // PostgreSQL's disk_full
		fmt.Errorf("insert: %w", sqliteCode(13)),               // SQLITE_FULL
		fmt.Errorf("open: %w", sqliteCode(4874)),               // SQLITE_IOERR_SHMSIZE: the WAL's shared memory could not grow
	} {
		if code, msg := ErrorCode(err), ErrorMessage(err); code != EUNAVAILABLE || !strings.Contains(msg, "disk is full") {
			t.Errorf("%v: %s %q, want %s and a full disk", err, code, msg, EUNAVAILABLE)
		}
	}
	for _, err := range []error{&os.PathError{Op: "write", Path: "x", Err: syscall.EIO}, sqlStateError("23505"), sqliteCode(10) /* SQLITE_IOERR */} {
		if code := ErrorCode(err); code != EINTERNAL {
			t.Errorf("%v: %s, want %s", err, code, EINTERNAL)
		}
	}
}

// sqliteCode is an error as SQLite drivers give it, with its result code.
type sqliteCode int

func (e sqliteCode) Error() string { return fmt.Sprintf("sqlite error (%d)", int(e)) }
func (e sqliteCode) Code() int     { return int(e) }
