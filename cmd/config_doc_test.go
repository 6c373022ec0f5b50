package cmd

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const configDoc = "../docs/configuration.md"

var (
	reDocTable = regexp.MustCompile("`\\[\\[?([a-z_.]+)\\]\\]?`")
	reDocRow   = regexp.MustCompile("^\\| `([a-z_]+)` \\|")
)

// docKeyRows reads the configuration reference: a heading that names tables
// (`[job.remote]`, `[[serve.client]]`) opens their section, and each table
// row starting with a backticked key documents that key in each of them.
// It returns the documented key paths (tables included) and the TOML
// example blocks.
func docKeyRows(t *testing.T) (map[string]bool, []string) {
	t.Helper()
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	var tables, blocks []string
	var block *strings.Builder
	inCode := false
	for n, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			if inCode {
				if block != nil {
					blocks = append(blocks, block.String())
				}
				inCode, block = false, nil
			} else {
				inCode = true
				if strings.TrimPrefix(line, "```") == "toml" {
					block = &strings.Builder{}
				}
			}
		case inCode:
			if block != nil {
				block.WriteString(line + "\n")
			}
		case strings.HasPrefix(line, "#"):
			tables = nil
			for _, m := range reDocTable.FindAllStringSubmatch(line, -1) {
				tables = append(tables, m[1])
				documented[m[1]] = true
			}
		default:
			m := reDocRow.FindStringSubmatch(line)
			if m == nil || len(tables) == 0 {
				continue
			}
			for _, tb := range tables {
				k := tb + "." + m[1]
				if documented[k] {
					t.Errorf("%s:%d: %s is documented twice", configDoc, n+1, k)
				}
				documented[k] = true
			}
		}
	}
	return documented, blocks
}

// docs/configuration.md documents every key of the config structs (found by
// their toml tags), and only those.
func TestConfigDocCoversSchema(t *testing.T) {
	documented, _ := docKeyRows(t)
	schema := map[string]bool{}
	for _, k := range schemaKeys() {
		schema[k] = true
		if !documented[k] {
			t.Errorf("%s does not document %s", configDoc, k)
		}
	}
	var extra []string
	for k := range documented {
		if !schema[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		t.Errorf("%s documents %s, which is not a key of the config", configDoc, k)
	}
	if len(documented) < 60 {
		t.Errorf("only %d keys found in %s: is its layout still what this test reads?", len(documented), configDoc)
	}
}

// Every TOML example of the reference is a whole config that config check
// passes without a warning.
func TestConfigDocExamplesAreValid(t *testing.T) {
	_, blocks := docKeyRows(t)
	if len(blocks) < 8 {
		t.Fatalf("only %d TOML examples found in %s", len(blocks), configDoc)
	}
	for i, text := range blocks {
		_, problems := checkConfigText("example", text)
		for _, p := range problems {
			t.Errorf("%s, TOML example %d: %v\n%s", configDoc, i+1, p, text)
		}
	}
}
