package cmd

import (
	"fmt"
	"io"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

func configCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect the configuration",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "validate the config and print it normalised (defaults filled in)",
			Description: "Prints one line per problem on stderr, errors and warnings alike: FILE:LINE: key: message.\n" +
				"Errors are what can never work: unknown keys (a typo must never silently disable a safety\n" +
				"setting), values of the wrong type or out of range, combinations that cannot do what they say.\n" +
				"Every command refuses a file with an error; serve --client not for one about jobs (it runs none).\n" +
				"A combination that depends on which hosts run the jobs (one file may serve several) is a warning.\n" +
				"Warnings are what may be intended but usually is not (relative paths, a push job that takes\n" +
				"no snapshots, two jobs replicating one dataset to one target, ...); other commands log them\n" +
				"once and run anyway.\n" +
				"Exits 2 when there is an error. Otherwise exits 0 and prints the normalised config on stdout:\n" +
				"every default filled in, durations and sizes as you would write them; read back, it is the\n" +
				"same configuration. Every key is described in docs/configuration.md.",
			Action: func(c *cli.Context) error {
				path := globalString(c, "config")
				cfg, problems := checkConfigFile(path)
				errs := 0
				for _, p := range problems {
					fmt.Fprintln(e.stderr, p.Error())
					if !p.Warning {
						errs++
					}
				}
				if errs > 0 {
					return &ConfigError{File: path, Msg: fmt.Sprintf("invalid: %d error(s), %d warning(s)", errs, len(problems)-errs)}
				}
				fmt.Fprintf(e.stdout, "# %s: valid, %d job(s), %d serve client(s), %d warning(s)\n",
					cfg.Path, len(cfg.Jobs), len(cfg.Serve.Clients), len(problems))
				return printConfig(e.stdout, cfg)
			},
		}},
	}
}

// printConfig writes the normalised config as TOML.
func printConfig(w io.Writer, cfg *Config) error {
	return toml.NewEncoder(w).Encode(cfg.fileConfig)
}

// loadConfigFlag loads the file named by --config / ZSYNC_CONFIG and logs
// its warnings once, at warn level; they never stop the command. serve
// loads it with loadServeConfig (errors in how jobs combine do not stop it)
// and does not log them (its stderr goes back to the client over SSH), nor
// does check (a monitoring plugin's stderr lands in its output; config
// check shows them).
func loadConfigFlag(c *cli.Context) (*Config, error) {
	load := LoadConfig
	if c.Command != nil && c.Command.Name == "serve" {
		load = loadServeConfig
	}
	cfg, err := load(globalString(c, "config"))
	if err != nil {
		return nil, err
	}
	if c.Command == nil || (c.Command.Name != "serve" && c.Command.Name != "check") {
		log := zerolog.Ctx(c.Context)
		for _, w := range cfg.Warnings {
			plain := *w
			plain.Warning = false
			log.Warn().Msg("config: " + plain.Error())
		}
	}
	return cfg, nil
}

// loadJobs loads the config and selects the named jobs (all when none) that
// pass keep.
func loadJobs(c *cli.Context, names []string, keep func(*jobConfig) bool) (*Config, []*jobConfig, error) {
	cfg, err := loadConfigFlag(c)
	if err != nil {
		return nil, nil, err
	}
	jobs, err := cfg.selectJobs(names, keep)
	if err != nil {
		return nil, nil, err
	}
	return cfg, jobs, nil
}
