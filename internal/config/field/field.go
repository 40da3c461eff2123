// Package field collects configuration errors keyed by their YAML path
// (routes[2].upstream). Check packages report through it without importing
// the config package; the config loader adds file:line.
package field

import (
	"fmt"
	"strings"
)

// Error is one invalid field.
type Error struct {
	Path string // YAML path, e.g. routes[2].checks.iplist.deny[0]
	Msg  string
	// Pos is "file:line", filled in by the config loader.
	Pos string
}

func (e *Error) Error() string {
	switch {
	case e.Pos != "" && e.Path != "":
		return e.Pos + ": " + e.Path + ": " + e.Msg
	case e.Pos != "":
		return e.Pos + ": " + e.Msg
	case e.Path != "":
		return e.Path + ": " + e.Msg
	}
	return e.Msg
}

// Errors accumulates field errors so validation reports all of them at once.
type Errors struct {
	List []*Error
}

// Add records an error at path.
func (e *Errors) Add(path, format string, args ...any) {
	e.List = append(e.List, &Error{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Len is the number of errors recorded.
func (e *Errors) Len() int { return len(e.List) }

// Join returns path + "." + name, handling the root.
func Join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// Index returns path[i].
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Err returns nil when there are no errors, else an error listing them all.
func (e *Errors) Err() error {
	if len(e.List) == 0 {
		return nil
	}
	return &ListError{Errs: e.List}
}

// ListError is every error of one validation.
type ListError struct{ Errs []*Error }

func (l *ListError) Error() string {
	var b strings.Builder
	for i, e := range l.Errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}
