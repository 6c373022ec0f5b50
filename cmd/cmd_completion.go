package cmd

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// Shell completion: the library's protocol (EnableBashCompletion): the shell
// runs `zsync WORDS... CURRENT --generate-bash-completion` and zsync prints
// one candidate a line for CURRENT, the word under the cursor (maybe empty).
// The library walks WORDS to the command they reach; complete answers there.
// The bash and zsh scripts are ours; fish's comes from the library.

// complete prints the candidates for e.compCur at the command c reached:
// its flags for a word starting with '-', nothing after a flag that takes a
// value (the shell completes a file name), else its subcommands.
func (e *env) complete(c *cli.Context) {
	e.completeWith(c, nil)
}

// completeWith is complete with the values the command takes as arguments.
func (e *env) completeWith(c *cli.Context, values []string) {
	cmd, cur := c.Command, e.compCur
	if strings.HasPrefix(cur, "-") {
		for _, f := range cmd.VisibleFlags() {
			for _, n := range f.Names() {
				if n = flagSpelling(n); strings.HasPrefix(n, cur) {
					fmt.Fprintln(e.stdout, n)
				}
			}
		}
		return
	}
	if name, hasValue, isFlag := flagName(e.compPrev); isFlag && !hasValue {
		if _, takesValue := (cmdLevel{flags: cmd.Flags}).flag(name); takesValue {
			return
		}
	}
	candidates := slices.Clone(values)
	for _, s := range cmd.Subcommands {
		if !s.Hidden {
			candidates = append(candidates, s.Names()...)
		}
	}
	for _, n := range candidates {
		if strings.HasPrefix(n, cur) {
			fmt.Fprintln(e.stdout, n)
		}
	}
}

var completionShells = []string{"bash", "zsh", "fish"}

func completionCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: "bash: source <(zsync completion bash), or save it as /usr/share/bash-completion/completions/zsync\n" +
			"zsh:  zsync completion zsh > \"${fpath[1]}/_zsync\" (a directory of $fpath), then compinit\n" +
			"fish: zsync completion fish > ~/.config/fish/completions/zsync.fish\n" +
			"The bash and zsh scripts ask zsync itself (--generate-bash-completion) for the\n" +
			"commands and flags that fit the command line so far.",
		BashComplete: func(c *cli.Context) { e.completeWith(c, completionShells) },
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("completion takes one shell: bash, zsh or fish")
			}
			script, err := completionScript(c.App, c.Args().First())
			if err != nil {
				return err
			}
			_, err = io.WriteString(e.stdout, script)
			return err
		},
	}
}

// completionScript returns the completion script for shell.
func completionScript(app *cli.App, shell string) (string, error) {
	switch shell {
	case "bash":
		return strings.ReplaceAll(bashCompletion, "PROG", app.Name), nil
	case "zsh":
		return strings.ReplaceAll(zshCompletion, "PROG", app.Name), nil
	case "fish":
		return app.ToFishCompletion()
	}
	return "", usageErrorf("completion: unknown shell %q: want bash, zsh or fish", shell)
}

// bashCompletion passes the words before the cursor and the word under it
// (COMP_WORDS splits at '=' and ':' too: harmless, those are never commands
// or flag names). After "--" it asks nothing: every word there is an
// argument, and the library would run such a command line.
const bashCompletion = `# bash completion for PROG (PROG completion bash)
_PROG() {
	local cur=${COMP_WORDS[COMP_CWORD]} w
	local -a words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	for w in "${words[@]}"; do
		[[ $w == -- ]] && return 0
	done
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${words[@]}" "$cur" --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _PROG PROG
`

// zshCompletion works autoloaded from $fpath (as _PROG) and sourced.
const zshCompletion = `#compdef PROG
# zsh completion for PROG (PROG completion zsh)
_PROG() {
	local -a before candidates
	before=("${(@)words[1,CURRENT-1]}")
	if (( ${before[(I)--]} )); then
		_files
		return
	fi
	candidates=("${(@f)$("${before[@]}" "${words[CURRENT]}" --generate-bash-completion 2>/dev/null)}")
	candidates=(${candidates:#})
	if (( ${#candidates} )); then
		compadd -a candidates
	else
		_files
	fi
}
if [[ $funcstack[1] == _PROG ]]; then
	_PROG "$@"
else
	compdef _PROG PROG
fi
`

func manCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "man",
		Usage:       "print the manual page (roff, section 8)",
		Description: "zsync man > /usr/local/share/man/man8/zsync.8, or read it with: zsync man | man -l -",
		Action: func(c *cli.Context) error {
			// the page is markdown made roff: the exit code table as a
			// code block keeps its columns
			c.App.Description = appIntro + "\n\n    " + strings.ReplaceAll(exitCodeHelp, "\n", "\n    ")
			page, err := c.App.ToMan()
			if err != nil {
				return err
			}
			_, err = io.WriteString(e.stdout, page)
			return err
		},
	}
}
