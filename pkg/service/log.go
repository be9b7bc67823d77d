package service

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string
	Format string
}

// RegisterFlags registers the log flags.
func (c *LogConfig) RegisterFlags(f FlagSet) {
	f.StringVar(&c.Level, "log.level", "info", "Log level: debug, info, warn, error.")
	f.StringVar(&c.Format, "log.format", "logfmt", "Log format: logfmt or json.")
}

// NewLogger builds the process logger.
func (c LogConfig) NewLogger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(c.Format) {
	case "logfmt", "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("log format %q: want logfmt or json", c.Format)
	}
}
