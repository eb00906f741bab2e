// Package pebblelog adapts a slog.Logger to pebble's Logger: errors are
// logged, informational chatter is dropped, and fatal errors panic (pebble
// stops on them; the caller's recover turns that into a closed connection
// or a failed open, never a crashed process).
package pebblelog

import (
	"fmt"
	"log/slog"
)

// Logger is a pebble.Logger over l.
type Logger struct{ L *slog.Logger }

// Infof drops the message.
func (p Logger) Infof(format string, args ...any) {}

// Errorf logs at error level.
func (p Logger) Errorf(format string, args ...any) {
	p.L.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf panics with the message.
func (p Logger) Fatalf(format string, args ...any) {
	panic("pebble: " + fmt.Sprintf(format, args...))
}
