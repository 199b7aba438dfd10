//go:build !linux

package logscan

import (
	"context"
	"log/slog"
)

// watch is polling only outside Linux.
func watch(context.Context, *Config, *slog.Logger) <-chan struct{} { return nil }
