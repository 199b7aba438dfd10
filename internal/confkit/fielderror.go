package confkit

import (
	"errors"
	"fmt"
)

// FieldError is a validation problem with one field of a config section.
// Field is the YAML key path relative to the section, dot-separated
// ("processes.0.name"), so the loader can report its file:line:col.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf builds a FieldError.
func FieldErrorf(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// FlattenErrors returns the individual errors joined inside err.
func FlattenErrors(err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, FlattenErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) && fe != err {
		// A FieldError wrapped in extra context: keep it addressable.
		return []error{fe}
	}
	return []error{err}
}
