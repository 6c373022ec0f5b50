package cmd

import (
	"fmt"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
)

func configCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "inspect the configuration",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "validate the config and print it normalised (defaults filled in)",
			Description: "Exits 0 when the file is valid and prints the normalised config on stdout.\n" +
				"Exits 2 with one line per problem (file:line: key: message) otherwise.\n" +
				"Unknown keys are errors: a typo must never silently disable a safety setting.",
			Action: func(c *cli.Context) error {
				cfg, err := loadConfigFlag(c)
				if err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "# %s: valid, %d job(s), %d serve client(s)\n", cfg.Path, len(cfg.Jobs), len(cfg.Serve.Clients))
				return toml.NewEncoder(e.stdout).Encode(cfg.fileConfig)
			},
		}},
	}
}

// loadConfigFlag loads the file named by --config / ZSYNC_CONFIG.
func loadConfigFlag(c *cli.Context) (*Config, error) {
	return LoadConfig(globalString(c, "config"))
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
