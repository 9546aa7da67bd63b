package inbox

import (
	"errors"
	"fmt"
)

// Code classifies an error the way the public API reports it.
type Code string

const (
	CodeInvalid      Code = "invalid"
	CodeUnauthorized Code = "unauthorized"
	CodeForbidden    Code = "forbidden"
	CodeNotFound     Code = "not_found"
	CodeConflict     Code = "conflict"
	CodeTooLarge     Code = "too_large"
	CodeRateLimited  Code = "rate_limited"
	CodeUnavailable  Code = "unavailable"
	CodeWindowClosed Code = "window_closed"
	CodeInternal     Code = "internal"
)

// Error is a domain error with a code the API maps to an HTTP status and a
// message safe to show to the caller.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Errorf builds a coded error.
func Errorf(code Code, format string, args ...any) error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for the common cases; compare with errors.Is.
var (
	ErrNotFound     = &Error{Code: CodeNotFound, Message: "not found"}
	ErrUnauthorized = &Error{Code: CodeUnauthorized, Message: "missing or invalid credentials"}
	ErrForbidden    = &Error{Code: CodeForbidden, Message: "this action needs the admin role"}
)

// Is makes errors.Is match any Error of the same code, so a store's
// ErrNotFound and a service's "conversation not found" compare equal.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// ErrorCode extracts the code of err, or CodeInternal for unknown errors.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// notFound names the missing thing without revealing whether it exists in
// another tenant.
func notFound(what string) error { return Errorf(CodeNotFound, "%s not found", what) }

func invalid(format string, args ...any) error { return Errorf(CodeInvalid, format, args...) }
