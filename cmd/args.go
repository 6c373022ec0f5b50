package cmd

import (
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// urfave/cli v2 (like Go's flag package) stops parsing flags at the first
// argument, so `zsync prune home --dry-run` would take "--dry-run" for a job
// name. arrangeArgs runs before the library and puts every flag of the
// command in front of its arguments, so flags work anywhere.

// completionFlag is the library's shell-completion request; it is always the
// last argument (see EnableBashCompletion).
const completionFlag = "--generate-bash-completion"

// cmdLevel is one command of the tree as the command line sees it: the root
// (the app) or a command or subcommand.
type cmdLevel struct {
	path  string // "zsync", "zsync holds", "zsync holds list"
	flags []cli.Flag
	subs  []*cli.Command
	// onUsage is the command's own answer to a usage error (check prints
	// its UNKNOWN status line); nil at the root.
	onUsage cli.OnUsageErrorFunc
}

func rootLevel(app *cli.App) cmdLevel {
	return cmdLevel{path: app.Name, flags: app.Flags, subs: app.Commands}
}

func (l cmdLevel) sub(name string) (cmdLevel, bool) {
	for _, c := range l.subs {
		if c.HasName(name) {
			return cmdLevel{path: l.path + " " + c.Name, flags: c.Flags, subs: c.Subcommands, onUsage: c.OnUsageError}, true
		}
	}
	return cmdLevel{}, false
}

// isHelpCommand reports whether name is the help command: the library adds
// it to the app and to every command with subcommands; newApp hides it on
// the others (so that "--" can pass a job named help) and arrangeArgs
// answers it there as the first argument, as the library did.
func (l cmdLevel) isHelpCommand(name string) bool {
	if name != "help" && name != "h" {
		return false
	}
	_, real := l.sub(name)
	return !real
}

// name is the level's path below the program, with tok appended.
func (l cmdLevel) name(tok string) string {
	_, below, _ := strings.Cut(l.path+" "+tok, " ")
	return below
}

// flag finds a flag of the level by name or alias; the library adds
// --help/-h to every command. It reports whether the flag takes a value.
func (l cmdLevel) flag(name string) (known, takesValue bool) {
	if name == "help" || name == "h" {
		return true, false
	}
	for _, f := range l.flags {
		if slices.Contains(f.Names(), name) {
			tv, ok := f.(interface{ TakesValue() bool })
			return true, !ok || tv.TakesValue()
		}
	}
	return false, false
}

// flagName parses a flag token as Go's flag package does: "-x", "--x",
// "-name", "--name", each optionally "=value". ok is false for arguments
// ("-" and anything not starting with '-'); "--" is handled by the caller.
func flagName(tok string) (name string, hasValue, ok bool) {
	if len(tok) < 2 || tok[0] != '-' {
		return "", false, false
	}
	name = strings.TrimPrefix(tok[1:], "-")
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue, true
}

// arrangeArgs walks the command path in args (program name first) and
// returns args with the flags of the final command moved ahead of its
// arguments, keeping their order, and "--" before the arguments so that
// none of them is taken for a flag or a subcommand. A non-bool flag takes
// the next token as its value unless given as --flag=value. Everything
// after "--" is an argument.
//
// Flags given before a subcommand's name belong to the command they follow
// (the global flags are on every command). It returns a *usageError for a
// flag the command does not have, for an unknown subcommand, and for help
// asked about an unknown command. `zsync help a b` becomes `zsync a b --help`,
// so help works at any level.
func arrangeArgs(app *cli.App, args []string) ([]string, error) {
	if len(args) == 0 {
		return args, nil
	}
	out := []string{args[0]}
	rest := args[1:]
	lvl := rootLevel(app)
	// a usage error of a command with its own answer (check's UNKNOWN
	// status line) goes through it
	fail := func(err error) ([]string, error) {
		if lvl.onUsage != nil {
			return nil, lvl.onUsage(nil, err, true)
		}
		return nil, err
	}
	for {
		var flags, pos []string
		help := false
		next := -1 // index in rest of the subcommand's name
		for i := 0; i < len(rest) && next < 0; i++ {
			tok := rest[i]
			if tok == "--" {
				pos = append(pos, rest[i+1:]...)
				break
			}
			if name, hasValue, ok := flagName(tok); ok {
				known, takesValue := lvl.flag(name)
				if !known {
					return fail(usageErrorf("unknown flag %s for %s (see %s --help)", tok, lvl.path, lvl.path))
				}
				flags = append(flags, tok)
				if name == "help" || name == "h" {
					// --help=false asks for no help: its arguments stay
					_, v, _ := strings.Cut(tok, "=")
					help = help || !hasValue || v == "true" || v == "1" || v == "t" || v == "T" || v == "TRUE" || v == "True"
				}
				if takesValue && !hasValue {
					// the value is the next token; a missing one, "--" or
					// another of this command's flags is a mistake (write
					// --flag=value for a value that starts with '-')
					if i+1 >= len(rest) || rest[i+1] == "--" {
						return fail(usageErrorf("flag %s needs a value (see %s --help)", tok, lvl.path))
					}
					if n, _, isFlag := flagName(rest[i+1]); isFlag {
						if known, _ := lvl.flag(n); known {
							return fail(usageErrorf("flag %s needs a value, not the flag %s (write %s=VALUE for a value that starts with '-')", tok, rest[i+1], tok))
						}
					}
					i++
					flags = append(flags, rest[i])
				}
				continue
			}
			if len(pos) == 0 && lvl.isHelpCommand(tok) {
				return helpArgs(append(out, flags...), lvl, rest[i+1:])
			}
			if len(lvl.subs) == 0 {
				pos = append(pos, tok)
				continue
			}
			// a command with subcommands: the first argument names one
			if _, ok := lvl.sub(tok); !ok {
				return nil, usageErrorf("unknown command %q (see %s --help)", lvl.name(tok), lvl.path)
			}
			next = i
		}
		out = append(out, flags...)
		if next < 0 {
			if help {
				// the library would take the first argument for a
				// help topic; help ignores arguments
				return out, nil
			}
			if len(pos) > 0 {
				if len(lvl.subs) > 0 {
					// only "--" then arguments reach here
					return nil, usageErrorf("%s takes a command, not arguments after -- (see %s --help)", lvl.path, lvl.path)
				}
				out = append(out, "--")
				out = append(out, pos...)
			}
			return out, nil
		}
		out = append(out, rest[next])
		lvl, _ = lvl.sub(rest[next])
		rest = rest[next+1:]
	}
}

// helpArgs turns `help [COMMAND...]` after the command line out (which
// reached lvl) into `COMMAND... --help`, which the library answers at any
// level. Flags after "help" (and their values) are ignored, as help ignores
// them.
func helpArgs(out []string, lvl cmdLevel, topic []string) ([]string, error) {
	for i := 0; i < len(topic); i++ {
		t := topic[i]
		if t == "--" {
			continue
		}
		if name, hasValue, isFlag := flagName(t); isFlag {
			if _, takesValue := lvl.flag(name); takesValue && !hasValue {
				i++ // its value
			}
			continue
		}
		if lvl.isHelpCommand(t) {
			break // `zsync help help`: help about the command reached
		}
		s, ok := lvl.sub(t)
		if !ok {
			return nil, usageErrorf("help: unknown command %q (see %s --help)", lvl.name(t), lvl.path)
		}
		out = append(out, t)
		lvl = s
	}
	return append(out, "--help"), nil
}

// flagSpelling is how a flag name is typed: -x or --name.
func flagSpelling(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
