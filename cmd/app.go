// Package cmd is zsync's composition root: the urfave/cli wiring, the TOML
// configuration and its mapping onto the domain packages' options, the logger,
// the signal context, the per-job locks, and the one mapping from errors to
// exit codes. Nothing below cmd parses flags, reads the config schema, exits
// the process or writes to stdout.
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

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
}

// Run is Main with explicit streams and context, for tests.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, log: zerolog.Nop()}
	app := newApp(e)
	err := app.RunContext(ctx, args)
	if err != nil && ctx.Err() != nil && !errors.Is(err, errInterrupted) {
		err = fmt.Errorf("%w: %v", errInterrupted, err)
	}
	code := ExitCode(err)
	e.reportExit(err, code)
	return code
}

// globalFlags are accepted before and after the subcommand: users type both.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "config `FILE`", Value: DefaultConfigPath, EnvVars: []string{"ZSYNC_CONFIG"}},
		&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (default: info on a terminal, warn otherwise)", EnvVars: []string{"ZSYNC_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Usage: "auto, console, text or json (auto: console on a terminal, text lines otherwise; under systemd every line carries its journal priority)", Value: "auto", EnvVars: []string{"ZSYNC_LOG_FORMAT"}},
	}
}

// globalString returns a global flag's value wherever on the command line it
// was given (the innermost wins), or its default.
func globalString(c *cli.Context, name string) string {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			return x.String(name)
		}
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

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:                 "zsync",
		Usage:                "keep ZFS datasets safe on another pool or host",
		UsageText:            "zsync [global options] command [command options] [arguments...]",
		Description:          "One-shot snapshot, replication and retention for ZFS, made for cron and systemd timers.\nContinuity between runs lives in ZFS itself (holds, bookmarks, resume tokens).\n\n" + exitCodeHelp,
		Version:              versionString(),
		Reader:               e.stdin,
		Writer:               e.stdout,
		ErrWriter:            e.stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		Flags:                globalFlags(),
		ExitErrHandler:       func(*cli.Context, error) {}, // exit codes are decided by ExitCode alone
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return &usageError{msg: err.Error()}
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("unknown command %q (see zsync --help)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Before: func(c *cli.Context) error { return setupLogging(c, e) },
		Commands: withGlobals([]*cli.Command{
			snapCommand(e),
			pruneCommand(e),
			pushCommand(e),
			pullCommand(e),
			runCommand(e),
			serveCommand(e),
			statusCommand(e),
			checkCommand(e),
			holdsCommand(e),
			configCommand(e),
			versionCommand(e),
		}),
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		c.Before = func(c *cli.Context) error { return setupLogging(c, e) }
	}
	return app
}
