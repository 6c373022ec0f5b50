package cmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// isTerminal reports whether w is a terminal (progress bars and console logs).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// logTarget is where stderr leads, as far as the log format is concerned.
type logTarget int

const (
	toPipe     logTarget = iota // a file, pipe or socket: cron's mail, a script's redirection
	toTerminal                  // a person at a terminal
	toJournal                   // systemd's journal: stderr is the stream JOURNAL_STREAM names
)

// stderrTarget tells where w (the process's stderr) leads; journalStream is
// the JOURNAL_STREAM environment variable.
func stderrTarget(w io.Writer, journalStream string) logTarget {
	switch {
	case isJournal(w, journalStream):
		return toJournal
	case isTerminal(w):
		return toTerminal
	default:
		return toPipe
	}
}

// isJournal reports whether w is the stream systemd connected to the
// journal. systemd sets JOURNAL_STREAM to "DEVICE:INODE" of that stream
// (systemd.exec(5)); the variable alone proves nothing, since it is
// inherited by children whose stderr was redirected elsewhere, so w's own
// device and inode must match it.
func isJournal(w io.Writer, journalStream string) bool {
	f, ok := w.(*os.File)
	if !ok || journalStream == "" {
		return false
	}
	devS, inoS, ok := strings.Cut(journalStream, ":")
	if !ok {
		return false
	}
	dev, err := strconv.ParseUint(devS, 10, 64)
	if err != nil {
		return false
	}
	ino, err := strconv.ParseUint(inoS, 10, 64)
	if err != nil {
		return false
	}
	d, i, ok := devIno(f)
	return ok && d == dev && i == ino
}

// journalEnv is the JOURNAL_STREAM variable systemd sets for a service's
// standard streams.
func journalEnv() string { return os.Getenv("JOURNAL_STREAM") }

// setupLogging builds the one logger from the global flags.
//
// Level: info on a terminal, warn otherwise (cron, journald), so cron mails
// only on problems; --log-level overrides it.
//
// Format: "auto" picks console lines on a terminal and plain text lines
// (one per event: time, level, message, key=value fields) anywhere else;
// "console", "text" and "json" force one. When stderr is the journal, the
// time is left to journald and every line, in any format, starts with the
// sd-daemon(3) priority prefix ("<3>" error, "<4>" warning, "<6>" info,
// "<7>" debug), which journald strips and stores as the priority, so
// `journalctl -p err` shows the failures.
func setupLogging(c *cli.Context, e *env) error {
	target := stderrTarget(e.stderr, journalEnv())
	level := zerolog.WarnLevel
	if target == toTerminal {
		level = zerolog.InfoLevel
	}
	if name := globalString(c, "log-level"); name != "" {
		l, err := zerolog.ParseLevel(name)
		if err != nil {
			return usageErrorf("invalid --log-level %q: want debug, info, warn or error", name)
		}
		level = l
	}
	w, err := logWriter(globalString(c, "log-format"), target, e.stderr)
	if err != nil {
		return err
	}
	e.log = zerolog.New(w).Level(level).With().Timestamp().Logger()
	c.Context = e.log.WithContext(c.Context) // for code that has only the cli.Context (loadConfigFlag)
	return nil
}

// logWriter returns the writer of the log format named by --log-format for
// a stderr out that leads to target.
func logWriter(format string, target logTarget, out io.Writer) (io.Writer, error) {
	journal := target == toJournal
	console := func(w io.Writer) zerolog.ConsoleWriter {
		return zerolog.ConsoleWriter{Out: w, NoColor: target != toTerminal, TimeFormat: time.TimeOnly, FormatMessage: consoleMessage}
	}
	var render func(w io.Writer, event []byte) error
	switch format {
	case "auto", "":
		if target == toTerminal {
			return console(out), nil
		}
		render = textRenderer(!journal)
	case "text":
		render = textRenderer(!journal)
	case "console":
		if !journal {
			return console(out), nil
		}
		render = func(w io.Writer, event []byte) error {
			_, err := console(w).Write(event)
			return err
		}
	case "json":
		if !journal {
			return out, nil
		}
		render = func(w io.Writer, event []byte) error {
			_, err := w.Write(event)
			return err
		}
	default:
		return nil, usageErrorf("invalid --log-format %q: want auto, console, text or json", format)
	}
	return &eventWriter{out: out, render: render, prefix: journal}, nil
}

// consoleMessage is the console format's message with control characters
// escaped (see escapeControl).
func consoleMessage(i any) string {
	if i == nil {
		return ""
	}
	return escapeControl(fmt.Sprint(i))
}

// eventWriter renders each zerolog event (one JSON object) and writes the
// result with one Write call; with prefix, every line of it starts with the
// event's sd-daemon priority, continuation lines of a multi-line message
// included (journald makes each line an entry of its own).
type eventWriter struct {
	out    io.Writer
	render func(w io.Writer, event []byte) error
	prefix bool
}

func (w *eventWriter) Write(p []byte) (int, error) { return w.WriteLevel(zerolog.NoLevel, p) }

func (w *eventWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	var buf bytes.Buffer
	if err := w.render(&buf, p); err != nil {
		return 0, err
	}
	text := buf.Bytes()
	if w.prefix {
		text = prefixLines(text, priority(l))
	}
	if _, err := w.out.Write(text); err != nil {
		return 0, err
	}
	return len(p), nil
}

// priority maps a zerolog level to an sd-daemon(3) / syslog priority.
func priority(l zerolog.Level) int {
	switch l {
	case zerolog.TraceLevel, zerolog.DebugLevel:
		return 7 // SD_DEBUG
	case zerolog.WarnLevel:
		return 4 // SD_WARNING
	case zerolog.ErrorLevel:
		return 3 // SD_ERR
	case zerolog.FatalLevel, zerolog.PanicLevel:
		return 2 // SD_CRIT
	default:
		return 6 // SD_INFO: info and events without a level
	}
}

// prefixLines puts "<prio>" before every line of text (which ends with a
// newline, added when missing).
func prefixLines(text []byte, prio int) []byte {
	p := "<" + strconv.Itoa(prio) + ">"
	s := strings.TrimSuffix(string(text), "\n")
	return []byte(p + strings.ReplaceAll(s, "\n", "\n"+p) + "\n")
}

// textRenderer renders an event as one plain line: [time] LEVEL message
// key=value..., fields in the order they were added. Strings that need it
// are quoted as Go strings; numbers, booleans, arrays and objects stay JSON.
// A multi-line message continues on indented lines, the fields after its
// last line. Control characters other than newline and tab are escaped, so
// a far side's stderr in a message cannot drive a terminal. An event that
// does not parse is written as it came.
func textRenderer(withTime bool) func(w io.Writer, event []byte) error {
	return func(w io.Writer, event []byte) error {
		line, ok := renderText(event, withTime)
		if !ok {
			_, err := w.Write(event)
			return err
		}
		_, err := io.WriteString(w, line)
		return err
	}
}

func renderText(event []byte, withTime bool) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", false
	}
	var level, ts, msg string
	var fields strings.Builder
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return "", false
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", false
		}
		var s string
		isString := json.Unmarshal(raw, &s) == nil
		switch {
		case key == zerolog.LevelFieldName && isString:
			level = s
		case key == zerolog.TimestampFieldName && isString:
			ts = s
		case key == zerolog.MessageFieldName && isString:
			msg = s
		default:
			fields.WriteByte(' ')
			fields.WriteString(escapeControl(key))
			fields.WriteByte('=')
			if isString {
				fields.WriteString(quoteValue(s))
			} else {
				fields.Write(raw)
			}
		}
	}
	var b strings.Builder
	if withTime && ts != "" {
		b.WriteString(ts)
		b.WriteByte(' ')
	}
	if level != "" {
		b.WriteString(strings.ToUpper(level))
		b.WriteByte(' ')
	}
	b.WriteString(strings.ReplaceAll(escapeControl(strings.TrimRight(msg, "\n")), "\n", "\n  "))
	b.WriteString(fields.String())
	b.WriteByte('\n')
	return b.String(), true
}

// quoteValue returns s as a logfmt value: bare when it is non-empty and has
// no space, quote, equals sign or unprintable character, Go-quoted
// otherwise.
func quoteValue(s string) string {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '"' || r == '=' || r == '\\' || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(s)
	}
	return s
}

// escapeControl replaces the control characters of s other than newline
// and tab by Go escapes (\x1b).
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, isEscaped) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isEscaped(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isEscaped(r rune) bool {
	return r != '\n' && r != '\t' && unicode.IsControl(r)
}

// logsErrors reports whether an error logged at error level reaches the user.
func (e *env) logsErrors() bool {
	return e.log.GetLevel() <= zerolog.ErrorLevel && e.log.GetLevel() != zerolog.Disabled
}
