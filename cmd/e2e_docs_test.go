//go:build realzfs

package cmd

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// docBlock is one fenced block of a walkthrough page: its language, its
// text, the HTML comment on the line before its fence (what the test does
// with it besides running it) and where it starts.
type docBlock struct {
	lang, text, marker string
	page               string
	line               int
}

var docMarker = regexp.MustCompile(`^<!--\s*(.*?)\s*-->$`)

// docBlocks returns the fenced blocks of a markdown page in order.
func docBlocks(t *testing.T, page string) []docBlock {
	t.Helper()
	f, err := os.Open(page)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docBlock
	var cur *docBlock
	prev := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &docBlock{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), page: filepath.Base(page), line: n}
			if m := docMarker.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
				cur.marker = m[1]
			}
		case cur != nil && strings.HasPrefix(l, "```"):
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
		if strings.TrimSpace(l) != "" {
			prev = l
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: the block opened at line %d is never closed", page, cur.line)
	}
	return out
}

// runDocShell runs a block's text with bash -e -u -o pipefail -x in dir,
// logs what it printed, and fails the test when it fails.
func runDocShell(t *testing.T, b docBlock, text, dir string) {
	t.Helper()
	c := exec.Command("bash", "-euxo", "pipefail", "-s")
	c.Dir = dir
	c.Stdin = strings.NewReader(text)
	c.Env = append(os.Environ(), "LC_ALL=C", "HOME=/root", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	start := time.Now()
	out, err := c.CombinedOutput()
	t.Logf("%s:%d (%v):\n%s", b.page, b.line, time.Since(start).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("%s:%d: the block failed: %v\n%s", b.page, b.line, err, text)
	}
}

// walkthroughPool creates a pool with a fixed name (the docs' `tank` and
// `backup`) on a file of its own, after destroying one a killed earlier
// run of this test left behind (recognised by its file). Another pool of
// that name fails the test.
func walkthroughPool(t *testing.T, name string) {
	t.Helper()
	file := filepath.Join(zfstest.BaseDir, "zsync-docs-"+name+".img")
	if _, _, err := zfstest.Exec(t, "zpool", "list", "-H", "-o", "name", name); err == nil {
		st := zfstest.Run(t, "zpool", "status", "-P", name)
		if !strings.Contains(st, file) {
			t.Fatalf("a pool named %s that is not this test's exists in the VM", name)
		}
		zfstest.Run(t, "zpool", "destroy", "-f", name)
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(192 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	t.Cleanup(func() {
		if _, errOut, err := zfstest.Exec(t, "zpool", "destroy", "-f", name); err != nil {
			t.Errorf("zpool destroy %s: %v: %s", name, err, errOut)
		}
		os.Remove(file)
		os.RemoveAll("/" + name)
	})
	zfstest.Run(t, "zpool", "create", "-f", "-O", "atime=off", "-O", "compression=off", name, file)
}

// replaceFile writes body to path and restores the old content (or removes
// the file) at cleanup.
func replaceFile(t *testing.T, path string, body []byte, mode os.FileMode) {
	t.Helper()
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, body, mode); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if existed {
			os.WriteFile(path, old, mode)
		} else {
			os.Remove(path)
		}
	})
}

// topFileSums returns name -> sha256 of the regular files directly in dir.
func topFileSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

func sameSums(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(want) == 0 {
		t.Fatalf("%s: nothing to compare", what)
	}
	var diff []string
	for n, w := range want {
		if got[n] != w {
			diff = append(diff, n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			diff = append(diff, n+" (extra)")
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s: files differ: %v", what, diff)
	}
}

// TestDocsWalkthrough executes docs/quickstart.md and then docs/restore.md
// as written, block by block, in the VM (laptop and backup host are this
// machine, backup.example.net is 127.0.0.1): the users, keys, zfs allow,
// config files, the first run, the systemd units with their hardening, the
// check, and the restore of a plain and an encrypted dataset. Then it
// checks what the pages promise: the replicas are where the pages say,
// the encrypted one arrived raw, the restored data is the source's, and
// after the restored copy took the original's place the job carries on
// incrementally.
func TestDocsWalkthrough(t *testing.T) {
	bin := os.Getenv("ZSYNC_BIN")
	if bin == "" {
		t.Fatal("ZSYNC_BIN is not set: the harness passes the built zsync binary")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pages := []string{filepath.Join(repo, "docs/quickstart.md"), filepath.Join(repo, "docs/restore.md")}

	// Leftovers of a killed earlier run, then this run's cleanup (LIFO:
	// units and user first, pools last).
	cleanupHost := func() {
		zfstest.Exec(t, "systemctl", "disable", "--now", "zsync@home.timer")
		zfstest.Exec(t, "systemctl", "stop", "zsync@home.service")
		os.Remove("/etc/systemd/system/zsync@.service")
		os.Remove("/etc/systemd/system/zsync@.timer")
		zfstest.Exec(t, "systemctl", "daemon-reload")
		zfstest.Exec(t, "systemctl", "reset-failed")
		zfstest.Exec(t, "userdel", "-r", "-f", "zsync")
		os.RemoveAll("/etc/zsync")
		os.RemoveAll("/var/lib/zsync")
		os.Remove("/usr/local/bin/zsync")
		os.Remove("/root/secret.key")
		os.Remove(filepath.Join(repo, "laptop.pub"))
	}
	cleanupHost()
	walkthroughPool(t, "tank")
	walkthroughPool(t, "backup")
	t.Cleanup(cleanupHost)

	// The laptop of the pages: tank/home with a child, tank/secret
	// encrypted with a key file.
	zfstest.MustCreate(t, "tank/home")
	zfstest.MustCreate(t, "tank/home/child")
	if err := os.WriteFile("/root/secret.key", []byte("correct horse battery staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	zfstest.MustCreate(t, "tank/secret", "encryption=on", "keyformat=passphrase", "keylocation=file:///root/secret.key")
	for _, ds := range []string{"tank/home", "tank/home/child", "tank/secret"} {
		zfstest.MustWriteFile(t, ds, "a.bin", 512)
		zfstest.MustWriteFile(t, ds, "b.bin", 64)
	}

	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, "/etc/hosts", append(append([]byte(nil), hosts...), []byte("127.0.0.1 backup.example.net\n")...), 0o644)
	raw, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, "/usr/local/bin/zsync", raw, 0o755)

	ran := 0
	for _, page := range pages {
		for _, b := range docBlocks(t, page) {
			switch {
			case strings.HasPrefix(b.marker, "not run:"):
				t.Logf("%s:%d: not run (%s)", b.page, b.line, strings.TrimSpace(strings.TrimPrefix(b.marker, "not run:")))
			case strings.HasPrefix(b.marker, "file:"):
				path := strings.TrimSpace(strings.TrimPrefix(b.marker, "file:"))
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(b.text), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Logf("%s:%d: wrote %s", b.page, b.line, path)
			case strings.HasPrefix(b.marker, "run instead:"):
				runDocShell(t, b, strings.TrimSpace(strings.TrimPrefix(b.marker, "run instead:"))+"\n", repo)
				ran++
			case b.marker != "":
				t.Fatalf("%s:%d: unknown marker %q", b.page, b.line, b.marker)
			case b.lang == "sh":
				runDocShell(t, b, b.text, repo)
				ran++
			default:
				t.Fatalf("%s:%d: a %q block without a marker: the test does not know what to do with it", b.page, b.line, b.lang)
			}
		}
	}
	if ran < 10 {
		t.Fatalf("only %d blocks ran: the pages lost their walkthrough", ran)
	}

	// The replicas are where the quick start says; the encrypted one is
	// raw (no key on the backup host).
	for _, ds := range []string{"backup/laptop/tank/home", "backup/laptop/tank/home/child", "backup/laptop/tank/secret"} {
		if !zfstest.Exists(t, ds) {
			t.Errorf("%s: the quick start's replica is missing", ds)
		}
	}
	if ks := zfstest.Get(t, "backup/laptop/tank/secret", "keystatus"); ks != "unavailable" {
		t.Errorf("backup/laptop/tank/secret: keystatus %q on the backup host, want unavailable (sent raw)", ks)
	}
	// The systemd unit ran as the timer will: its last result is success.
	if res := strings.TrimSpace(zfstest.Run(t, "systemctl", "show", "-P", "Result", "zsync@home.service")); res != "success" {
		t.Errorf("zsync@home.service: Result=%s", res)
	}

	// The restore brought back the source's data: the restored tank/home
	// (now live) against the damaged original, the restored secret against
	// the live tank/secret.
	sameSums(t, "restored tank/home", topFileSums(t, "/tank/home"), topFileSums(t, "/tank/home.damaged"))
	sameSums(t, "restored tank/secret", topFileSums(t, "/tank/restore/secret"), topFileSums(t, "/tank/secret"))
	if enc := zfstest.Get(t, "tank/restore/secret", "encryption"); enc == "off" {
		t.Errorf("tank/restore/secret is not encrypted")
	}

	// The job carries on from the restored tank/home incrementally: a new
	// snapshot arrives on the existing replica, nothing is rotated aside.
	zfstest.MustWriteFile(t, "tank/home", "after.bin", 32)
	zfstest.MustSnapshot(t, "tank/home@after_restore")
	zfstest.Run(t, "/usr/local/bin/zsync", "push", "home")
	if !zfstest.Exists(t, "backup/laptop/tank/home@after_restore") {
		t.Errorf("the snapshot taken after the restore did not reach the replica")
	}
	if g1, g2 := zfstest.GUID(t, "tank/home@after_restore"), zfstest.GUID(t, "backup/laptop/tank/home@after_restore"); g1 != g2 {
		t.Errorf("after_restore: guid %s here, %s on the replica", g1, g2)
	}
	all := zfstest.Zfs(t, "list", "-H", "-o", "name", "-r", "backup")
	if strings.Contains(all, ".zsync-rotated-") {
		t.Errorf("a replica was rotated aside after the restore:\n%s", all)
	}
}
