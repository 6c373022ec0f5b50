// Package cmd is zsync's composition root: the urfave/cli wiring, the TOML
// configuration and its mapping onto the domain packages' options, the logger,
// the signal context, the per-job locks, and the one mapping from errors to
// exit codes. Nothing below cmd parses flags, reads the config schema, exits
// the process or writes to stdout.
package cmd

import (
	"context"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// Main runs zsync with the process's arguments and streams and returns the
// exit code. main.go passes it to os.Exit; nothing else in zsync exits.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, os.Stdin, os.Stdout, os.Stderr)
}

// env is what every command gets from the composition root.
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    zerolog.Logger
	// logFormat is the --log-format the logger was built with (setupLogs).
	logFormat string
	// compCur and compPrev are the word being completed and the one
	// before it on a shell completion request (see complete).
	compCur, compPrev string
	// start is when this run began: its reports' start time (a process
	// runs one command; tests run many in one process).
	start time.Time
}

// Run is Main with explicit streams and context, for tests.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, log: zerolog.Nop(), start: time.Now()}
	app := newApp(e)
	err := markInterrupted(ctx, runApp(ctx, app, e, args))
	code := ExitCode(err)
	e.reportExit(err, code)
	return code
}

// runApp runs the app on args: a shell completion request (see complete)
// through the library, other command lines with their flags put in front
// of their arguments.
func runApp(ctx context.Context, app *cli.App, e *env, args []string) error {
	if n := len(args); n > 1 && args[n-1] == completionFlag {
		if n > 2 && slices.Contains(args[1:n-2], "--") {
			// after "--" the library would run the command line, flag and
			// all, as arguments: a completion request never runs anything
			// ("--" as the word being completed may start a long flag)
			return nil
		}
		if n > 2 {
			// the library walks the words before the one being completed
			e.compCur = args[n-2]
			args = slices.Delete(slices.Clone(args), n-2, n-1)
			if n > 3 {
				e.compPrev = args[n-3]
			}
		}
		return app.RunContext(ctx, args)
	}
	args, err := arrangeArgs(app, args)
	if err != nil {
		return err
	}
	return app.RunContext(ctx, args)
}

// globalFlags are accepted before and after the subcommand: users type both.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE`", Value: DefaultConfigPath, EnvVars: []string{"ZSYNC_CONFIG"}, TakesFile: true},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: info on a terminal, warn otherwise)", EnvVars: []string{"ZSYNC_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Usage: "auto, console, text or json (auto: console on a terminal, text lines otherwise; under systemd every line carries its journal priority)", Value: "auto", EnvVars: []string{"ZSYNC_LOG_FORMAT"}},
	}
}

// globalString returns a global flag's value wherever on the command line it
// was given (the innermost wins), else its environment variable, else its
// default. The library counts a value from the environment as set on every
// command that has the flag, so a level whose value is the environment's is
// passed over: `ZSYNC_CONFIG=a zsync --config b run` must read b.
func globalString(c *cli.Context, name string) string {
	env, fromEnv := "", false
	for _, f := range globalFlags() {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == name {
			for _, v := range sf.EnvVars {
				if val, ok := os.LookupEnv(v); ok && val != "" {
					env, fromEnv = val, true
					break
				}
			}
		}
	}
	for _, x := range c.Lineage() {
		if x.IsSet(name) && (!fromEnv || x.String(name) != env) {
			return x.String(name)
		}
	}
	if fromEnv {
		return env
	}
	return c.String(name)
}

func withGlobals(cmds []*cli.Command) []*cli.Command {
	for _, c := range cmds {
		c.Flags = append(c.Flags, globalFlags()...)
		withGlobals(c.Subcommands)
	}
	return cmds
}

// wireCommands gives every command and subcommand the app's usage errors,
// the logger set up from the flags given so far, and completion. Commands
// without subcommands get no help subcommand: `zsync snap -- help` names a
// job (arrangeArgs answers `zsync snap help` as the library did).
func wireCommands(cmds []*cli.Command, app *cli.App, e *env) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = app.OnUsageError
		}
		if c.Before == nil {
			c.Before = func(c *cli.Context) error { return e.setupLogs(c) }
		}
		if c.BashComplete == nil {
			c.BashComplete = e.complete
		}
		c.HideHelpCommand = len(c.Subcommands) == 0
		wireCommands(c.Subcommands, app, e)
	}
}

const appIntro = "One-shot snapshot, replication and retention for ZFS, made for cron and systemd timers.\n" +
	"Continuity between runs lives in ZFS itself (holds, bookmarks, resume tokens).\n" +
	"Options may come before or after a command's arguments; after -- everything is an argument."

const appDescription = appIntro + "\n\n" + exitCodeHelp

// versionFlag is the app's own --version (the library's is a package
// global and prints another format): only before a command.
func versionFlag() cli.Flag {
	return &cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version (as zsync version)", DisableDefaultText: true}
}

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:                 "zsync",
		Usage:                "keep ZFS datasets safe on another pool or host",
		UsageText:            "zsync [global options] command [command options] [arguments...]",
		Description:          appDescription,
		Version:              versionString(),
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags:                append(globalFlags(), versionFlag()),
		BashComplete:         e.complete,
		ExitErrHandler:       func(*cli.Context, error) {}, // exit codes are decided by ExitCode alone
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error()}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("unknown command %q (see zsync --help)", c.Args().First())
			}
			if c.Bool("version") {
				return printVersion(e.stdout)
			}
			return cli.ShowAppHelp(c)
		},
		Before: func(c *cli.Context) error {
			if c.Bool("version") && c.Args().Present() {
				return usageErrorf("--version takes no command (see zsync --help)")
			}
			return e.setupLogs(c)
		},
		Commands: withGlobals([]*cli.Command{
			snapCommand(e),
			pruneCommand(e),
			pushCommand(e),
			pullCommand(e),
			runCommand(e),
			serveCommand(e),
			statusCommand(e),
			checkCommand(e),
			verifyCommand(e),
			healCommand(e),
			holdsCommand(e),
			configCommand(e),
			versionCommand(e),
			completionCommand(e),
			manCommand(e),
		}),
	}
	wireCommands(app.Commands, app, e)
	return app
}
