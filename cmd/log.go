package cmd

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// isTerminal reports whether w is a terminal (progress bars and console logs).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// setupLogging builds the one logger from the global flags. On a terminal:
// human console lines at info. Otherwise (cron, journald): JSON lines at warn,
// so cron mails only on problems.
func setupLogging(c *cli.Context, e *env) error {
	tty := isTerminal(e.stderr)
	format := globalString(c, "log-format")
	levelName := globalString(c, "log-level")
	level := zerolog.WarnLevel
	if tty {
		level = zerolog.InfoLevel
	}
	if levelName != "" {
		l, err := zerolog.ParseLevel(levelName)
		if err != nil || levelName == "" {
			return usageErrorf("invalid --log-level %q: want debug, info, warn or error", levelName)
		}
		level = l
	}
	var w io.Writer
	switch format {
	case "console":
		w = zerolog.ConsoleWriter{Out: e.stderr, NoColor: !tty, TimeFormat: time.TimeOnly}
	case "json":
		w = e.stderr
	case "auto", "":
		if tty {
			w = zerolog.ConsoleWriter{Out: e.stderr, TimeFormat: time.TimeOnly}
		} else {
			w = e.stderr
		}
	default:
		return usageErrorf("invalid --log-format %q: want auto, console or json", format)
	}
	e.log = zerolog.New(w).Level(level).With().Timestamp().Logger()
	c.Context = e.log.WithContext(c.Context) // for code that has only the cli.Context (loadConfigFlag)
	return nil
}

// logged reports whether an error logged at error level reaches the user.
func (e *env) logsErrors() bool {
	return e.log.GetLevel() <= zerolog.ErrorLevel && e.log.GetLevel() != zerolog.Disabled
}
