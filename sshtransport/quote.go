package sshtransport

import "strings"

// RemoteCommand builds the command line sent in an SSH "exec" request. The
// far sshd hands that line to the remote user's login shell, so every word is
// quoted for a POSIX shell: words made only of characters no shell treats
// specially are sent as they are, any other word (including the empty word)
// goes inside single quotes, with each embedded single quote written as '\”.
// A binary path starting with "~/" keeps that prefix unquoted so the far
// shell still expands it to the remote user's home directory.
//
// The command is fixed by configuration (the zsync binary and "serve
// --stdio" with its flags): dataset names never travel on the command line,
// only inside the protocol.
//
// Example: RemoteCommand("/opt/my zsync/zsync", "serve", "--stdio") returns
// `'/opt/my zsync/zsync' serve --stdio`.
func RemoteCommand(binary string, args ...string) string {
	var b strings.Builder
	if rest, ok := strings.CutPrefix(binary, "~/"); ok {
		b.WriteString("~/")
		if rest != "" {
			writeShellWord(&b, rest)
		}
	} else {
		writeShellWord(&b, binary)
	}
	for _, a := range args {
		b.WriteByte(' ')
		writeShellWord(&b, a)
	}
	return b.String()
}

// writeShellWord appends s to b as one POSIX shell word.
func writeShellWord(b *strings.Builder, s string) {
	if s != "" && strings.IndexFunc(s, needsShellQuote) < 0 {
		b.WriteString(s)
		return
	}
	b.WriteByte('\'')
	b.WriteString(strings.ReplaceAll(s, "'", `'\''`))
	b.WriteByte('\'')
}

// needsShellQuote reports whether r may mean something to some shell when it
// appears unquoted. '=' and '%' are quoted too: "a=b" as the first word is an
// assignment, and zsh and fish expand words starting with them.
func needsShellQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	switch r {
	case '-', '_', '.', '/', ',', ':', '+', '@':
		return false
	}
	return true
}
