package cmd

import (
	"fmt"
	"strings"
)

// ConfigError is a configuration problem with its place: file, line and the
// key path (e.g. job[1].snapshot.interval). It maps to exit code 2, unless
// it is a warning: warnings are reported (by `config check`, and logged once
// by the other commands) but never stop a run.
type ConfigError struct {
	File    string
	Line    int // 0 when unknown
	Key     string
	Msg     string
	Warning bool
	// jobs marks an error about jobs, which does not stop `serve --client`
	// (it runs no job; see problem.jobs).
	jobs bool
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": %s", e.Key)
	}
	if e.Warning {
		b.WriteString(": warning")
	}
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// lineIndex maps key paths to the line that defines them: table headers,
// array-of-table headers, `key =` lines, the keys of inline tables and the
// elements of arrays. Array tables and array elements carry their index, the
// way the decoder names them: "job[1].snapshot.interval",
// "job[0].prune.source[2].grid", "job[0].datasets[1]". BurntSushi/toml keeps
// key positions to itself (and one per unindexed key only), so this scans
// the file's structure. It is used only to point at the right line.
type lineIndex struct {
	keys map[string]int // key path -> 1-based line
}

func newLineIndex(text string) *lineIndex {
	ix := &lineIndex{keys: map[string]int{}}
	s := &tomlScanner{src: text, line: 1, ix: ix, arrays: map[string]int{}}
	s.document()
	return ix
}

func (ix *lineIndex) set(k string, line int) {
	if _, ok := ix.keys[k]; !ok {
		ix.keys[k] = line
	}
}

// line returns the line of a key path, or of its closest parent, or 0.
func (ix *lineIndex) line(path string) int {
	for p := path; p != ""; {
		if l, ok := ix.keys[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

// joinKey appends one key to a path; the decoder builds its paths the same
// way.
func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexKey(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// tomlScanner walks a TOML document's structure just far enough to know
// where each key is. It never fails: on text that is not valid TOML (which
// the decoder reports itself) it may record odd paths, but it always ends.
type tomlScanner struct {
	src    string
	i      int
	line   int
	ix     *lineIndex
	table  string         // the current table's path
	arrays map[string]int // array-of-tables path -> entries seen
}

func (s *tomlScanner) eof() bool { return s.i >= len(s.src) }

func (s *tomlScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *tomlScanner) advance() {
	if s.eof() {
		return
	}
	if s.src[s.i] == '\n' {
		s.line++
	}
	s.i++
}

// skip passes spaces and tabs, and with newlines also line ends and
// comments.
func (s *tomlScanner) skip(newlines bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance()
		case newlines && c == '\n':
			s.advance()
		case newlines && c == '#':
			s.toEOL()
		default:
			return
		}
	}
}

func (s *tomlScanner) toEOL() {
	for !s.eof() && s.peek() != '\n' {
		s.advance()
	}
}

func (s *tomlScanner) document() {
	for {
		s.skip(true)
		if s.eof() {
			return
		}
		start := s.i
		if s.peek() == '[' {
			s.header()
		} else {
			s.keyValue(s.table)
		}
		// whatever is left on the line (a comment, or text the decoder
		// rejects) is not structure
		s.skip(false)
		if s.peek() == '#' || s.i == start {
			s.toEOL()
			if s.i == start {
				s.advance()
			}
		}
	}
}

// header reads [a.b] or [[a.b]]: the indexes of enclosing array tables are
// those of their latest entries, as in the decoder.
func (s *tomlScanner) header() {
	line := s.line
	s.advance()
	array := s.peek() == '['
	if array {
		s.advance()
	}
	parts := s.key()
	cur := ""
	for n, p := range parts {
		cur = joinKey(cur, p)
		switch count, seen := s.arrays[cur]; {
		case array && n == len(parts)-1:
			s.arrays[cur] = count + 1
			s.ix.set(cur, line)
			cur = indexKey(cur, count)
		case seen:
			cur = indexKey(cur, count-1)
		}
	}
	s.ix.set(cur, line)
	s.table = cur
	for !s.eof() && s.peek() != ']' && s.peek() != '\n' {
		s.advance()
	}
	for s.peek() == ']' {
		s.advance()
	}
}

// key reads a dotted key up to '=' or ']'.
func (s *tomlScanner) key() []string {
	var parts []string
	for {
		s.skip(false)
		var part string
		switch s.peek() {
		case '"', '\'':
			part = s.str()
		default:
			start := s.i
			for !s.eof() && isBareKeyChar(s.peek()) {
				s.advance()
			}
			if s.i == start {
				return parts
			}
			part = s.src[start:s.i]
		}
		parts = append(parts, part)
		s.skip(false)
		if s.peek() != '.' {
			return parts
		}
		s.advance()
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func (s *tomlScanner) keyValue(prefix string) {
	line := s.line
	parts := s.key()
	if len(parts) == 0 {
		return
	}
	path := prefix
	for _, p := range parts {
		path = joinKey(path, p)
		s.ix.set(path, line)
	}
	s.skip(false)
	if s.peek() != '=' {
		return
	}
	s.advance()
	s.skip(false)
	s.value(path)
}

func (s *tomlScanner) value(path string) {
	switch s.peek() {
	case '"', '\'':
		s.str()
	case '[':
		s.advance()
		for n := 0; ; {
			s.skip(true)
			switch s.peek() {
			case 0:
				return
			case ']':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			}
			elem := indexKey(path, n)
			s.ix.set(elem, s.line)
			start := s.i
			s.value(elem)
			if s.i == start {
				s.advance()
			}
			n++
		}
	case '{':
		s.advance()
		for {
			s.skip(true)
			switch s.peek() {
			case 0:
				return
			case '}':
				s.advance()
				return
			case ',':
				s.advance()
				continue
			}
			start := s.i
			s.keyValue(path)
			if s.i == start {
				s.advance()
			}
		}
	default:
		for !s.eof() && !strings.ContainsRune(",]}\n#", rune(s.peek())) {
			s.advance()
		}
	}
}

// str reads a basic or literal string, single- or multi-line, and returns
// its raw text (escapes are not decoded: it only names keys).
func (s *tomlScanner) str() string {
	q := s.peek()
	multi := strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))
	n := 1
	if multi {
		n = 3
	}
	for range n {
		s.advance()
	}
	start := s.i
	for !s.eof() {
		c := s.peek()
		switch {
		case c == '\\' && q == '"':
			s.advance()
		case c == '\n' && !multi:
			return s.src[start:s.i]
		case c == q && (!multi || strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3))):
			end := s.i
			for range n {
				s.advance()
			}
			// a multi-line string may end in one or two more quotes
			for multi && s.peek() == q {
				s.advance()
			}
			return s.src[start:end]
		}
		s.advance()
	}
	return s.src[start:]
}
