package cmd

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/sshtransport"
)

// version is set at build time: -ldflags "-X github.com/zsync-dev/zsync/cmd.version=v1.2.3".
var version = "dev"

func buildCommit() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "unknown", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

func versionString() string {
	return fmt.Sprintf("%s (commit %s, protocol %d, %s)", version, buildCommit(), sshtransport.ProtocolVersion, runtime.Version())
}

func versionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:   "version",
		Usage:  "print version, commit and protocol version",
		Action: func(c *cli.Context) error { return printVersion(e.stdout) },
	}
}

// printVersion is what `zsync version` and `zsync --version` print.
func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "zsync %s\ncommit %s\nprotocol %d\n%s\n", version, buildCommit(), sshtransport.ProtocolVersion, runtime.Version())
	return err
}
