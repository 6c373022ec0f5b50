package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/zsync-dev/zsync"

// TestImportDirection enforces the architecture of CONVENTIONS.md: zfs/ and
// state/ are leaves; sync/, snap/, prune/ and sshtransport/ import only zfs/
// and state/; inside sshtransport/, wire/ imports only zfs/, serve/ only
// zfs/ and wire/ (never the client), the root package zfs/, state/ and
// wire/; only cmd/ uses urfave/cli, BurntSushi/toml and mpb; only the root
// sshtransport package uses x/crypto/ssh; only main.go and cmd/ exit the
// process or write to the process's stdout/stderr.
//
// A package's rules are those of its directory when allowed lists it (the
// sub-packages of sshtransport), else those of its top directory, which
// covers its sub-directories too (zfs/zfstest is part of zfs). The names
// in the rules are such keys as well.
func TestImportDirection(t *testing.T) {
	allowed := map[string][]string{
		"zfs":                          {},
		"state":                        {},
		"sync":                         {"zfs", "state"},
		"snap":                         {"zfs", "state"},
		"prune":                        {"zfs", "state"},
		"sshtransport":                 {"zfs", "state", "sshtransport/wire"},
		"sshtransport/wire":            {"zfs"},
		"sshtransport/serve":           {"zfs", "sshtransport/wire"},
		"sshtransport/serve/servetest": {"zfs"},
	}
	// What tests may import on top: the client's tests run it against
	// Serve, with the fake zfs both ends' tests share.
	testAllowed := map[string][]string{
		"sshtransport":       {"sshtransport/serve", "sshtransport/serve/servetest"},
		"sshtransport/serve": {"sshtransport/serve/servetest"},
	}
	// key is the rule group of a module-relative directory.
	key := func(dir string) string {
		if _, ok := allowed[dir]; ok {
			return dir
		}
		return strings.SplitN(dir, "/", 2)[0]
	}
	seen := map[string]int{}
	exclusive := map[string]string{
		"github.com/urfave/cli":      "cmd",
		"github.com/BurntSushi/toml": "cmd",
		"golang.org/x/crypto/ssh":    "sshtransport",
		// the progress bars write to the terminal: cmd's business
		"github.com/vbauerster/mpb": "cmd",
	}
	checked := 0
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		top := "." // main.go and friends
		if dir := filepath.ToSlash(filepath.Dir(path)); dir != "." {
			top = key(dir)
		}
		seen[top]++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		isTest := strings.HasSuffix(path, "_test.go")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if rules, ok := allowed[top]; ok && strings.HasPrefix(p, module+"/") {
				dep := key(strings.TrimPrefix(p, module+"/"))
				if dep != top && !contains(rules, dep) && !(isTest && contains(testAllowed[top], dep)) {
					t.Errorf("%s imports %s: %s/ may import only %v", path, p, top, rules)
				}
			}
			for prefix, owner := range exclusive {
				if strings.HasPrefix(p, prefix) && top != owner && !(isTest && owner == "sshtransport") {
					t.Errorf("%s imports %s: only %s/ may", path, p, owner)
				}
			}
		}
		checked++
		if isTest || top == "cmd" || top == "." {
			return nil
		}
		full, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(full, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "os" {
				switch sel.Sel.Name {
				case "Exit", "Stdout", "Stderr":
					t.Errorf("%s: uses os.%s; only main.go and cmd/ may", fset.Position(sel.Pos()), sel.Sel.Name)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Fatalf("checked only %d Go files; is the walk broken?", checked)
	}
	for k := range allowed {
		if seen[k] == 0 {
			t.Errorf("no Go files under %s/: a rule for a package that does not exist", k)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
