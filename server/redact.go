package server

import (
	"log/slog"

	"github.com/bulkhead-dev/bulkhead/telemetry"
)

// redactLogger returns opts.Logger behind a telemetry.Redactor with the
// default rules plus LogRedactKeys and LogRedactPatterns (over a logger
// that already redacts, the rules are merged rather than stacked), or
// opts.Logger as it is with DisableLogRedaction. Every component of the
// server logs through what it returns.
func redactLogger(opts Options) (*slog.Logger, error) {
	if opts.DisableLogRedaction {
		return opts.Logger, nil
	}
	patterns, err := telemetry.CompileRedactPatterns(opts.LogRedactPatterns)
	if err != nil {
		return nil, &OptionError{Field: "LogRedactPatterns", Err: err}
	}
	h := telemetry.NewRedactor(opts.Logger.Handler(), telemetry.RedactOptions{Keys: opts.LogRedactKeys, Patterns: patterns})
	return slog.New(h), nil
}

// Logger returns the logger the server and all its components write to:
// Options.Logger behind the redaction Options ask for. Code that runs
// beside the server (a command's own lines) should log through it too.
func (s *Server) Logger() *slog.Logger { return s.log }
