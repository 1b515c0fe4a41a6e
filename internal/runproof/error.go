package runproof

import (
	"errors"
	"fmt"
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
	EUNAVAILABLE  = "unavailable"  // not done now (the server is stopping): retry
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

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err; internal errors get a
// generic text so that nothing internal leaks.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// ErrorFields returns the field errors of err, if any.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
