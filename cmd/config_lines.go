package cmd

import (
	"fmt"
	"regexp"
	"strings"
)

// ConfigError is a configuration problem with its place: file, line and the
// key path (e.g. job[1].snapshot.interval). It maps to exit code 2.
type ConfigError struct {
	File string
	Line int // 0 when unknown
	Key  string
	Msg  string
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
	fmt.Fprintf(&b, ": %s", e.Msg)
	return b.String()
}

// lineIndex maps key paths to the line that defines them. BurntSushi/toml does
// not expose key positions, so this reads the file's structure itself: table
// headers, array-of-table headers and `key =` lines. It is only used to point
// at the right line in error messages.
type lineIndex struct {
	lines []string
	keys  map[string]int // "job[0].snapshot.interval" -> 1-based line
}

var (
	reArrayTable = regexp.MustCompile(`^\s*\[\[\s*([^\]]+?)\s*\]\]`)
	reTable      = regexp.MustCompile(`^\s*\[\s*([^\]\[]+?)\s*\]`)
	reKey        = regexp.MustCompile(`^\s*("[^"]*"|[A-Za-z0-9_\-]+)\s*=`)
)

func newLineIndex(text string) *lineIndex {
	ix := &lineIndex{lines: strings.Split(text, "\n"), keys: map[string]int{}}
	counts := map[string]int{} // array table -> number seen
	table := ""
	resolve := func(name string) string {
		// Replace the longest array-table prefix with its indexed form.
		best := ""
		for a := range counts {
			if (name == a || strings.HasPrefix(name, a+".")) && len(a) > len(best) {
				best = a
			}
		}
		if best == "" {
			return name
		}
		return fmt.Sprintf("%s[%d]%s", best, counts[best]-1, name[len(best):])
	}
	for i, l := range ix.lines {
		if m := reArrayTable.FindStringSubmatch(l); m != nil {
			name := normKey(m[1])
			counts[name]++
			table = resolve(name)
			ix.set(table, i+1)
			continue
		}
		if m := reTable.FindStringSubmatch(l); m != nil {
			table = resolve(normKey(m[1]))
			ix.set(table, i+1)
			continue
		}
		if m := reKey.FindStringSubmatch(l); m != nil {
			k := strings.Trim(m[1], `"`)
			if table != "" {
				k = table + "." + k
			}
			ix.set(k, i+1)
		}
	}
	return ix
}

func normKey(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"`)
	}
	return strings.Join(parts, ".")
}

func (ix *lineIndex) set(k string, line int) {
	if _, ok := ix.keys[k]; !ok {
		ix.keys[k] = line
	}
}

// line returns the line of an indexed key path, or of its closest parent.
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

var reIndex = regexp.MustCompile(`\[\d+\]`)

// find locates a key path reported without array indexes (as the TOML
// decoder reports undecoded keys, e.g. "job.snapshot.intervall"): the first
// indexed key that matches, else the first line that assigns the last
// component (keys inside inline tables), else 0. It returns the indexed path
// when known.
func (ix *lineIndex) find(plain string) (string, int) {
	best, bestLine := "", 0
	for k, l := range ix.keys {
		if reIndex.ReplaceAllString(k, "") == plain && (bestLine == 0 || l < bestLine) {
			best, bestLine = k, l
		}
	}
	if bestLine > 0 {
		return best, bestLine
	}
	last := plain
	if i := strings.LastIndex(plain, "."); i >= 0 {
		last = plain[i+1:]
	}
	re := regexp.MustCompile(`(^|[\s{,])"?` + regexp.QuoteMeta(last) + `"?\s*=`)
	for i, l := range ix.lines {
		if re.MatchString(l) {
			return plain, i + 1
		}
	}
	return plain, 0
}

// lineOfText returns the first line at or after the line of path that
// contains text, e.g. one rule inside a multi-line prune rule list.
func (ix *lineIndex) lineOfText(path, text string) int {
	start := ix.line(path)
	if start == 0 || text == "" {
		return start
	}
	for i := start - 1; i < len(ix.lines); i++ {
		if strings.Contains(ix.lines[i], text) {
			return i + 1
		}
	}
	return start
}
