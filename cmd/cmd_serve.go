package cmd

import (
	"time"

	"github.com/urfave/cli/v2"

	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/zfs"
)

func serveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "the far endpoint: speaks zsync's protocol on stdin/stdout (an SSH forced command or a local child)",
		Description: "Without --client it acts with the full rights of its user, as zfs itself would.\n" +
			"With --client NAME it enforces that client's [[serve.client]] entry of the config:\n" +
			"the datasets it may send, the root it may receive into, append_only. In authorized_keys:\n" +
			"  command=\"zsync serve --stdio --client laptop\",restrict ssh-ed25519 AAAA...",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "stdio", Usage: "speak the protocol on stdin/stdout (required)"},
			&cli.StringFlag{Name: "client", Usage: "enforce the [[serve.client]] entry called `NAME`"},
		},
		Action: func(c *cli.Context) error {
			if !c.Bool("stdio") {
				return usageErrorf("serve needs --stdio")
			}
			var cfg *Config
			var pol *serve.Policy
			if name := c.String("client"); name != "" {
				var err error
				cfg, err = loadConfigFlag(c)
				if err != nil {
					return err
				}
				var cl *serveClientConfig
				for i := range cfg.Serve.Clients {
					if cfg.Serve.Clients[i].Name == name {
						cl = &cfg.Serve.Clients[i]
					}
				}
				if cl == nil {
					return usageErrorf("no [[serve.client]] named %q in %s", name, cfg.Path)
				}
				pol = &serve.Policy{Client: name, ReceiveRoot: cl.ReceiveRoot, AppendOnly: cl.AppendOnly, PruneSend: cl.PruneSend, AllowHeal: cl.AllowHeal,
					AllowProperties: cl.AllowProperties, MaxHolds: cl.MaxHolds, MaxStreams: cl.MaxStreams}
				if len(cl.Send) > 0 {
					f, err := zfs.ParseFilter(cl.Send)
					if err != nil {
						return err
					}
					pol.Send = f.Match
				} else {
					pol.Send = func(string) bool { return false }
				}
			}
			var idle time.Duration
			if cfg != nil && c.String("client") != "" {
				idle = defaultServeIdleTimeout
				if cfg.Serve.IdleTimeout.IsSet() {
					idle = cfg.Serve.IdleTimeout.Duration
				}
			}
			z := e.newZFS(cfg)
			log := e.log.With().Str("client", c.String("client")).Logger()
			return serve.Serve(c.Context, e.stdin, e.stdout, z, serve.Options{
				SoftwareVersion: version,
				Policy:          pol,
				IdleTimeout:     idle,
				HelloTimeout:    min(idle, serve.DefaultHelloTimeout),
				Log: func(op string, args map[string]any, err error) {
					if err != nil {
						log.Warn().Err(err).Str("op", op).Fields(args).Msg("request failed")
					} else {
						log.Debug().Str("op", op).Fields(args).Msg("request")
					}
				},
			})
		},
	}
}
