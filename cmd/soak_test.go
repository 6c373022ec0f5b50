//go:build realzfs

package cmd

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// The soak: rounds of a multi-dataset job (nested filesystems, an
// encrypted one, a volume) alternating push and pull through the guest's
// real sshd, each with one fault injected at a random point, then plain
// runs until the job converges. After every round it checks what an admin
// would: no zsync hold or bookmark leaked, no snapshot gone that retention
// (or the fault itself) did not destroy, and every replicated snapshot's
// data equal to the source's. ZSYNC_SOAK_ROUNDS sets the rounds (the tier
// runs 5; make soak 50), ZSYNC_SOAK_SEED replays a run.

// soakFaults are the kinds of fault, one per round.
var soakFaults = []string{
	"kill-zsync",       // kill -9 of the zsync run
	"kill-serve",       // kill -9 of the far `zsync serve` (under sshd)
	"kill-send",        // kill -9 of `zfs send`
	"kill-recv",        // kill -9 of `zfs recv`
	"cut-tcp",          // the TCP connection to sshd dropped by the proxy
	"pool-full",        // a quota on the target root the round's data does not fit in
	"destroy-snapshot", // a source snapshot not yet on the target destroyed mid-run
	"concurrent-prune", // another job's aggressive prune running at the same time
	"clock-forward",    // the clock moved forward a day before the run
}

// soakDatasets are the source datasets below <src>/soak.
var soakDatasets = []string{"soak", "soak/a", "soak/a/nested", "soak/enc", "soak/vol"}

type soakRun struct {
	code     int
	stderr   string
	duration time.Duration
}

type soak struct {
	mu       sync.Mutex // condemned and runs: runs may end concurrently
	t        *testing.T
	rng      *rand.Rand
	src, dst string
	cfg      string
	keyfile  string
	proxy    *cutProxy
	clockOff time.Duration

	// condemned: full snapshot names destroyed by a zsync prune (its log
	// says so) or by the soak itself (the destroy-snapshot fault).
	condemned map[string]bool
	// seen: every snapshot seen so far on the source and on both targets
	// (name -> guid); a seen snapshot that is gone must be condemned.
	seen map[string]string
	// verified: target snapshots whose data was compared with the source.
	verified map[string]bool
	sums     map[string]string // source snapshot -> data checksum
	mnt      map[string]string // source dataset -> mountpoint
	// what the last plain run of each command took (scales the fault time)
	lastDur map[string]time.Duration

	// figures
	faults      map[string]int
	missed      map[string]int // the fault's moment passed without its victim running
	maxConverge int
	runs        int
	needBytes   int64 // stream sizes of the increments (each replicated twice)
	leaked      []string
	lost        []string
	mismatched  []string
	unconverged []string
}

func TestSoak(t *testing.T) {
	rounds := 5
	if v, err := strconv.Atoi(os.Getenv("ZSYNC_SOAK_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("ZSYNC_SOAK_SEED"), 10, 64); err == nil {
		seed = v
	}
	fmt.Printf("SOAK| seed %d (ZSYNC_SOAK_SEED=%d replays it), %d rounds, %s\n", seed, seed, rounds, strings.ReplaceAll(zfstest.Version(t), "\n", " "))
	s := newSoak(t, seed)
	// Faults in a shuffled cycle: every kind comes once per len(soakFaults)
	// rounds, in an order the seed decides.
	var order []string
	for i := 0; i < rounds; i++ {
		if i%len(soakFaults) == 0 {
			perm := s.rng.Perm(len(soakFaults))
			for _, p := range perm {
				order = append(order, soakFaults[p])
			}
		}
	}
	for i := 0; i < rounds; i++ {
		cmd := "push"
		if i%2 == 1 {
			cmd = "pull"
		}
		s.round(i, cmd, order[i])
		// a tally after every round: an interrupted soak still says how far
		// it got and what it saw
		fmt.Printf("SOAK| after round %d (%s, %s): runs %d, max runs to converge %d, leaked %d, lost %d, mismatched %d, unconverged %d\n",
			i, cmd, order[i], s.runs, s.maxConverge, len(s.leaked), len(s.lost), len(s.mismatched), len(s.unconverged))
		if t.Failed() && len(s.unconverged) > 0 {
			break
		}
	}
	if !t.Failed() {
		// both jobs once more, then everything checked on both targets
		for _, cmd := range []string{"push", "pull"} {
			if r := s.zsync("run", jobOf(cmd)); r.code != 0 {
				t.Errorf("final %s: exit %d", cmd, r.code)
			}
		}
		s.check("end", "push", "pull")
		s.verifyAll()
	}
	s.report(rounds)
}

func newSoak(t *testing.T, seed int64) *soak {
	s := &soak{
		t: t, rng: rand.New(rand.NewSource(seed)),
		condemned: map[string]bool{}, seen: map[string]string{}, verified: map[string]bool{},
		lastDur: map[string]time.Duration{}, faults: map[string]int{}, missed: map[string]int{},
	}
	s.src, s.dst = zfstest.NewPool(t, 384), zfstest.NewPool(t, 512)
	s.keyfile = zfstest.KeyFile(t, "soak passphrase")
	zfstest.MustCreate(t, s.src+"/soak/a/nested")
	zfstest.MustCreate(t, s.src+"/soak/enc", "encryption=on", "keyformat=passphrase", "keylocation=file://"+s.keyfile)
	zfstest.Zfs(t, "create", "-V", "16M", "-o", "volblocksize=16k", s.src+"/soak/vol")
	zfstest.MustCreate(t, s.dst+"/push")
	zfstest.MustCreate(t, s.dst+"/pull")
	s.writeData(0)

	s.proxy = newCutProxy(t, "127.0.0.1:22")
	client := newClientKey(t, "soak", writeConfig(t, serveClient("soak", s.dst+"/push", []string{s.src + "/soak<"}, "")))
	marker := "zsync-soak-" + zfstest.RandomSuffix(t, 12)
	authorize(t, client.authorizedLine()+" "+marker, marker)
	// the known_hosts entries name the proxy's port
	hosts, err := os.ReadFile(client.knownHosts)
	if err != nil {
		t.Fatal(err)
	}
	var kh strings.Builder
	for _, l := range strings.Split(string(hosts), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && !strings.HasPrefix(l, "#") {
			fmt.Fprintf(&kh, "[127.0.0.1]:%d %s %s\n", s.proxy.port, f[1], f[2])
		}
	}
	if err := os.WriteFile(client.knownHosts, []byte(kh.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := fmt.Sprintf("  [job.remote]\n  host = \"127.0.0.1\"\n  port = %d\n  user = \"root\"\n  identity_file = %q\n  known_hosts = %q\n",
		s.proxy.port, client.identity, client.knownHosts)
	s.cfg = writeConfig(t, fmt.Sprintf(`
[[job]]
name = "up"
type = "push"
datasets = ["%[1]s/soak<"]
root = "%[2]s/push"
%[3]s
  [job.replication]
  concurrency = 3
  [job.snapshot]
  prefix = "zsync_"
  interval = "1s"
  [job.prune]
  source = [
    { grid = "1x1h(keep=all) | 24x1h | 7x1d", regex = "^zsync_" },
    { last_n = 6, regex = "^zsync_" },
  ]
  target = [{ last_n = 1000, regex = "^zsync_" }]

[[job]]
name = "down"
type = "pull"
datasets = ["%[1]s/soak<"]
root = "%[2]s/pull"
%[3]s
  [job.replication]
  concurrency = 3
  [job.prune]
  target = [{ last_n = 1000, regex = "^zsync_" }]

[[job]]
name = "greedy"
type = "push"
datasets = ["%[1]s/soak<"]
root = "%[2]s/push"
%[3]s
  [job.prune]
  source = [{ last_n = 1, regex = "^zsync_" }]
  target = [{ last_n = 2, regex = "^zsync_" }]
`, s.src, s.dst, remote))
	t.Cleanup(func() {
		if s.clockOff != 0 {
			setClock(t, -s.clockOff)
		}
	})

	// the first snapshot and both initial replications
	s.zsync("snap", "up")
	s.needBytes += 2 * s.streamBytes("")
	for _, cmd := range []string{"push", "pull"} {
		if r := s.zsync("run", jobOf(cmd)); r.code != 0 {
			t.Fatalf("initial %s: exit %d\n%s", cmd, r.code, tail(r.stderr, 3000))
		}
	}
	s.check("initial", "push", "pull")
	return s
}

func jobOf(cmd string) string {
	if cmd == "push" {
		return "up"
	}
	return "down"
}

// writeData changes every dataset a little: a new file in the filesystems,
// a few random blocks in the volume.
func (s *soak) writeData(round int) {
	t := s.t
	for _, ds := range soakDatasets {
		if ds == "soak/vol" {
			dev := "/dev/zvol/" + s.src + "/soak/vol"
			waitPath(t, dev)
			f, err := os.OpenFile(dev, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64<<10)
			for i := 0; i < 1+s.rng.Intn(4); i++ {
				s.rng.Read(buf)
				if _, err := f.WriteAt(buf, int64(s.rng.Intn(16*16))*(64<<10)); err != nil {
					f.Close()
					t.Fatalf("write %s: %v", dev, err)
				}
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			continue
		}
		if s.mnt == nil {
			s.mnt = map[string]string{}
		}
		if s.mnt[ds] == "" {
			s.mnt[ds] = zfstest.Mountpoint(t, s.src+"/"+ds)
		}
		zfstest.WriteRandom(t, filepath.Join(s.mnt[ds], fmt.Sprintf("r%03d-%d", round, s.rng.Intn(1000))), 32+s.rng.Intn(320))
	}
}

func waitPath(t *testing.T, p string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear", p)
		}
		exec.Command("udevadm", "settle").Run()
		time.Sleep(100 * time.Millisecond)
	}
}

// zsync runs the built binary (a separate process, as cron's would be) to
// the end and records the snapshots its prunes destroyed.
func (s *soak) zsync(args ...string) soakRun {
	c := s.start(args...)
	return s.wait(c)
}

type soakProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	t0     time.Time
	args   []string
}

func (s *soak) start(args ...string) *soakProc {
	bin := os.Getenv("ZSYNC_BIN")
	if bin == "" {
		s.t.Fatal("ZSYNC_BIN is not set")
	}
	full := append([]string{"--config", s.cfg, "--log-format", "json", "--log-level", "info"}, args...)
	c := exec.Command(bin, full...)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var errb bytes.Buffer
	c.Stderr = &errb
	if err := c.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.runs++
	s.mu.Unlock()
	return &soakProc{cmd: c, stderr: &errb, t0: time.Now(), args: args}
}

func (s *soak) wait(p *soakProc) soakRun {
	err := p.cmd.Wait()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	r := soakRun{code: code, stderr: p.stderr.String(), duration: time.Since(p.t0)}
	// ExitCode is -1 when a signal ended the process
	s.notePruned(r.stderr, code == -1)
	s.t.Logf("zsync %s -> %d in %v", strings.Join(p.args, " "), code, r.duration.Round(time.Millisecond))
	if code != 0 {
		s.t.Logf("stderr: %s", tail(r.stderr, 2000))
	}
	return r
}

// notePruned adds to condemned what retention destroyed or may have
// destroyed: the names of "pruned" lines; the names of a "pruning" line
// (said before the destroy) only where the outcome is unknown, that is when
// a "destroy failed" line names the snapshot (the far side may have died
// after destroying it) or the run itself was killed (killed: it did not
// exit on its own). A name that prune kept, or that a finished run said
// nothing more of, is not condemned: losing it would be a loss.
func (s *soak) notePruned(stderr string, killed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	pending := map[string]bool{} // said "pruning", outcome not yet told
	failed := map[string]bool{}
	for sc.Scan() {
		var line struct {
			Msg       string   `json:"message"`
			Dataset   string   `json:"dataset"`
			Snapshot  string   `json:"snapshot"`
			Snapshots []string `json:"snapshots"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		full := func(n string) string {
			if !strings.Contains(n, "@") {
				return line.Dataset + "@" + n
			}
			return n
		}
		switch line.Msg {
		case "pruning":
			for _, n := range line.Snapshots {
				pending[full(n)] = true
			}
		case "pruned":
			for _, n := range line.Snapshots {
				s.condemned[full(n)] = true
			}
		case "destroy failed":
			if line.Snapshot != "" {
				failed[full(line.Snapshot)] = true
			}
		}
	}
	for n := range pending {
		if killed || failed[n] {
			s.condemned[n] = true
		}
	}
}

// round: new data, one faulted `zsync run` of the push or the pull job
// (snapshot, replicate, prune), plain runs until it converges, then the
// checks.
func (s *soak) round(i int, cmd, fault string) {
	t := s.t
	t.Logf("=== round %d: %s with fault %s", i, cmd, fault)
	s.writeData(i + 1)
	prev := s.newestSnapshots()
	if cmd == "pull" {
		// a pull job snapshots nothing: the source's own schedule does
		if r := s.zsync("snap", "up"); r.code != 0 {
			t.Fatalf("snap: exit %d", r.code)
		}
	}

	// `zsync run JOB`: snapshot (push), replicate, prune, as cron runs it
	s.faulted(cmd, fault)
	s.observe(fmt.Sprintf("round %d after the %s run", i, fault))

	// plain runs until one succeeds
	n := 0
	for {
		n++
		r := s.zsync("run", jobOf(cmd))
		s.observe(fmt.Sprintf("round %d, plain run %d", i, n))
		if r.code == 0 {
			s.lastDur[cmd] = r.duration
			break
		}
		if n >= 6 {
			s.unconverged = append(s.unconverged, fmt.Sprintf("round %d (%s, %s): still exit %d after %d runs", i, cmd, fault, r.code, n))
			t.Errorf("round %d: %s did not converge after %d runs (last exit %d)", i, cmd, n, r.code)
			return
		}
		time.Sleep(time.Second)
	}
	s.needBytes += 2 * s.streamBytesSince(prev)
	if n > s.maxConverge {
		s.maxConverge = n
	}
	s.check(fmt.Sprintf("round %d (%s, %s)", i, cmd, fault), cmd)
}

// faulted runs cmd once with the fault injected at a random moment.
func (s *soak) faulted(cmd, fault string) {
	t := s.t
	s.faults[fault]++
	scale := s.lastDur[cmd]
	if scale <= 0 {
		scale = 3 * time.Second
	}
	at := time.Duration(s.rng.Int63n(int64(scale)))
	target := s.dst + "/push"
	if cmd == "pull" {
		target = s.dst + "/pull"
	}
	var victim func() []int
	switch fault {
	case "clock-forward":
		setClock(t, 24*time.Hour)
		s.clockOff += 24 * time.Hour
		s.zsync("run", jobOf(cmd))
		return
	case "pool-full":
		// the round's data (tens of KiB per dataset at least) does not fit
		used, _ := strconv.ParseInt(strings.TrimSpace(zfstest.Zfs(t, "get", "-H", "-p", "-o", "value", "used", target)), 10, 64)
		zfstest.Zfs(t, "set", fmt.Sprintf("quota=%d", used+16<<10), target)
		r := s.zsync("run", jobOf(cmd))
		zfstest.Zfs(t, "set", "quota=none", target)
		if r.code == 0 {
			s.missed[fault]++
			return
		}
		// the admin is told the target is full (metrics, exit kind), not
		// an unexplained zfs failure
		if kind := finalErrorKind(r.stderr); kind != "zfs_no_space" {
			t.Errorf("round with a full target: error_kind %q, want zfs_no_space\n%s", kind, tail(r.stderr, 2000))
		}
		return
	case "kill-serve":
		victim = func() []int { return pgrep("serve --stdio --client soak$") }
	case "kill-send":
		// not the size estimate (zfs send -n)
		victim = func() []int { return pgrepExcept("^zfs send ", " -n ") }
	case "kill-recv":
		// not an abort of a partial receive (zfs recv -A)
		victim = func() []int { return pgrepExcept("^zfs (recv|receive) ", " -A ") }
	}
	p := s.start("run", jobOf(cmd))
	done := make(chan soakRun, 1)
	go func() { done <- s.wait(p) }()
	select {
	case r := <-done:
		_ = r
		s.missed[fault]++
		t.Logf("the run ended before the %s moment (%v)", fault, at)
		return
	case <-time.After(at):
	}
	hit := false
	switch fault {
	case "kill-zsync":
		hit = p.cmd.Process.Signal(syscall.SIGKILL) == nil
	case "cut-tcp":
		// the connection may still be being set up: wait for it
		hit = s.until(done, func() bool { return s.proxy.cut() > 0 })
	case "destroy-snapshot":
		hit = s.destroyPending(target)
	case "concurrent-prune":
		pr := s.zsync("prune", "greedy")
		hit = true
		t.Logf("concurrent prune: exit %d", pr.code)
	default:
		// wait (while the run lasts) for the victim process to appear
		hit = s.until(done, func() bool {
			pids := victim()
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			if len(pids) > 0 {
				t.Logf("%s: killed %v", fault, pids)
			}
			return len(pids) > 0
		})
	}
	if !hit {
		s.missed[fault]++
	}
	r := <-done
	t.Logf("%s run: exit %d (fault at %v, hit %v)", cmd, r.code, at, hit)
	if fault == "kill-zsync" {
		waitReceiversGone(t)
	}
}

// finalErrorKind is the error_kind of the last log line that carries an
// exit code (the run's summary).
func finalErrorKind(stderr string) string {
	kind := ""
	for _, l := range strings.Split(stderr, "\n") {
		var line struct {
			Exit int    `json:"exit"`
			Kind string `json:"error_kind"`
		}
		if json.Unmarshal([]byte(l), &line) == nil && line.Exit != 0 {
			kind = line.Kind
		}
	}
	return kind
}

// until polls cond until it holds (true) or the run ends first (false; the
// run's result stays in done).
func (s *soak) until(done chan soakRun, cond func() bool) bool {
	for {
		if cond() {
			return true
		}
		select {
		case r := <-done:
			done <- r
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// destroyPending destroys one source snapshot that the target does not
// have yet (the run may be sending it right now); a held one is refused by
// zfs, which is fine too.
func (s *soak) destroyPending(target string) bool {
	t := s.t
	ds := soakDatasets[s.rng.Intn(len(soakDatasets))]
	have := map[string]bool{}
	if zfstest.Exists(t, target+"/"+s.src+"/"+ds) {
		for _, n := range snapshotsOf(t, target+"/"+s.src+"/"+ds) {
			have[n] = true
		}
	}
	var pending []string
	for _, n := range snapshotsOf(t, s.src+"/"+ds) {
		if !have[n] && strings.HasPrefix(n, "zsync_") {
			pending = append(pending, n)
		}
	}
	if len(pending) == 0 {
		return false
	}
	name := s.src + "/" + ds + "@" + pending[s.rng.Intn(len(pending))]
	_, errOut, err := zfstest.Exec(t, "zfs", "destroy", name)
	if err != nil {
		t.Logf("destroy %s refused: %s", name, strings.TrimSpace(errOut))
		return true
	}
	t.Logf("destroyed %s mid-run", name)
	s.mu.Lock()
	s.condemned[name] = true
	s.mu.Unlock()
	return true
}

// pgrepExcept is pgrep without the processes whose command line (its
// arguments joined by spaces, with a space at each end) contains except.
func pgrepExcept(pattern, except string) []int {
	var out []int
	for _, pid := range pgrep(pattern) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || strings.Contains(" "+strings.ReplaceAll(string(b), "\x00", " ")+" ", except) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func pgrep(pattern string) []int {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// setClock moves the guest's clock by d.
func setClock(t *testing.T, d time.Duration) {
	t.Helper()
	when := time.Now().Add(d).Unix()
	zfstest.Run(t, "date", "-s", "@"+strconv.FormatInt(when, 10))
}

// newestSnapshots maps each source dataset to its newest snapshot.
func (s *soak) newestSnapshots() map[string]string {
	st := listState(s.t, s.src+"/soak")
	m := map[string]string{}
	for _, ds := range soakDatasets {
		if snaps := st.snaps[s.src+"/"+ds]; len(snaps) > 0 {
			m[ds] = snaps[len(snaps)-1]
		}
	}
	return m
}

// streamBytes is the size of the full stream of every dataset's newest
// snapshot ("" = all datasets).
func (s *soak) streamBytes(string) int64 {
	var total int64
	for ds, snap := range s.newestSnapshots() {
		total += sendSize(s.t, s.src+"/"+ds+"@"+snap, "")
	}
	return total
}

// streamBytesSince is the size of the increments from prev to each dataset's
// newest snapshot.
func (s *soak) streamBytesSince(prev map[string]string) int64 {
	var total int64
	for ds, snap := range s.newestSnapshots() {
		from := ""
		if p, ok := prev[ds]; ok && p != snap {
			from = s.src + "/" + ds + "@" + p
		} else if ok {
			continue
		}
		total += sendSize(s.t, s.src+"/"+ds+"@"+snap, from)
	}
	return total
}

func sendSize(t *testing.T, snap, from string) int64 {
	args := []string{"zfs", "send", "-n", "-P", "-w"}
	if from != "" {
		args = append(args, "-i", from)
	}
	out, errOut, err := zfstest.Exec(t, append(args, snap)...)
	if err != nil {
		t.Logf("size of %s: %v %s", snap, err, errOut)
		return 0
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "size" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// zfsState is one recursive listing: snapshots (name -> guid, in
// createtxg order per dataset), bookmarks, holds (snapshot -> tags) and
// resume tokens, from three zfs calls.
type zfsState struct {
	guid      map[string]string   // snapshot or bookmark -> guid
	snaps     map[string][]string // dataset -> short snapshot names, oldest first
	bookmarks map[string][]string // dataset -> short bookmark names
	holds     map[string][]string // full snapshot name -> hold tags
	tokens    map[string]bool     // datasets with a receive_resume_token
}

func listState(t *testing.T, root string) zfsState {
	st := zfsState{guid: map[string]string{}, snaps: map[string][]string{}, bookmarks: map[string][]string{},
		holds: map[string][]string{}, tokens: map[string]bool{}}
	out := zfstest.Zfs(t, "list", "-H", "-p", "-r", "-t", "snapshot,bookmark", "-s", "createtxg", "-o", "name,guid,userrefs", root)
	var held []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(l, "\t")
		if len(f) != 3 {
			continue
		}
		st.guid[f[0]] = f[1]
		if ds, name, ok := strings.Cut(f[0], "@"); ok {
			st.snaps[ds] = append(st.snaps[ds], name)
			if f[2] != "0" && f[2] != "-" {
				held = append(held, f[0])
			}
		} else if ds, name, ok := strings.Cut(f[0], "#"); ok {
			st.bookmarks[ds] = append(st.bookmarks[ds], name)
		}
	}
	if len(held) > 0 {
		out := zfstest.Zfs(t, append([]string{"holds", "-H"}, held...)...)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Split(l, "\t"); len(f) >= 2 {
				st.holds[f[0]] = append(st.holds[f[0]], f[1])
			}
		}
	}
	out = zfstest.Zfs(t, "get", "-H", "-r", "-o", "name,value", "receive_resume_token", root)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(l, "\t"); len(f) == 2 && f[1] != "-" {
			st.tokens[f[0]] = true
		}
	}
	return st
}

// check: after a converged round of cmd, nothing leaked, nothing lost, the
// target has every dataset's newest snapshot with the source's data.
// (Each target is checked in the rounds of its own job; the initial check
// covers both.)
func (s *soak) check(when string, cmds ...string) {
	t := s.t
	src := listState(t, s.src+"/soak")
	roots := []string{}
	for _, c := range cmds {
		roots = append(roots, s.dst+"/"+c)
	}
	tgts := map[string]zfsState{}
	for _, r := range roots {
		tgts[r] = listState(t, r)
	}
	now := map[string]string{}
	for n, g := range src.guid {
		now[n] = g
	}
	for _, st := range tgts {
		for n, g := range st.guid {
			now[n] = g
		}
	}
	s.observe(when)
	// leftovers of the checksum reads (a clone that could not be destroyed
	// would pin a source snapshot)
	if out := zfstest.Zfs(t, "list", "-H", "-o", "name", "-t", "volume", "-r", s.src); strings.Contains(out, "soakclone") {
		s.leak(when, "checksum clone left: "+strings.TrimSpace(out))
	}
	for _, ds := range soakDatasets {
		srcDS := s.src + "/" + ds
		srcSnaps := src.snaps[srcDS]
		if len(srcSnaps) == 0 {
			t.Errorf("%s: %s has no snapshots", when, srcDS)
			continue
		}
		newest := srcSnaps[len(srcSnaps)-1]
		// the source: one cursor per replicating job at most, no other
		// zsync bookmark, no zsync hold once the runs are over
		var cursors int
		for _, b := range src.bookmarks[srcDS] {
			switch {
			case strings.HasPrefix(b, "zsync_cursor_"):
				cursors++
			case strings.HasPrefix(b, "zsync_"):
				s.leak(when, srcDS+"#"+b)
			}
		}
		if cursors > 2 {
			s.leak(when, fmt.Sprintf("%s: %d cursor bookmarks (2 jobs)", srcDS, cursors))
		}
		for _, snap := range srcSnaps {
			for _, h := range src.holds[srcDS+"@"+snap] {
				if strings.HasPrefix(h, "zsync_") {
					s.leak(when, fmt.Sprintf("%s@%s: hold %s", srcDS, snap, h))
				}
			}
		}
		for _, root := range roots {
			st := tgts[root]
			tgt := root + "/" + srcDS
			tsnaps := st.snaps[tgt]
			if len(tsnaps) == 0 || tsnaps[len(tsnaps)-1] != newest {
				s.unconverged = append(s.unconverged, fmt.Sprintf("%s: %s lacks the newest source snapshot %s", when, tgt, newest))
				t.Errorf("%s: %s has %v, not the source's newest %s", when, tgt, tsnaps, newest)
				continue
			}
			if st.tokens[tgt] {
				s.leak(when, tgt+": leftover resume token")
			}
			var last []string
			for _, snap := range tsnaps {
				for _, h := range st.holds[tgt+"@"+snap] {
					switch {
					case strings.HasPrefix(h, "zsync_last_"):
						last = append(last, snap+" "+h)
					case strings.HasPrefix(h, "zsync_"):
						s.leak(when, fmt.Sprintf("%s@%s: hold %s", tgt, snap, h))
					}
				}
			}
			if len(last) != 1 || !strings.HasPrefix(last[0], newest+" ") {
				s.leak(when, fmt.Sprintf("%s: last-received holds %v, want one on %s", tgt, last, newest))
			}
			for _, b := range st.bookmarks[tgt] {
				if strings.HasPrefix(b, "zsync_") {
					s.leak(when, tgt+"#"+b)
				}
			}
			if ds == "soak/enc" {
				// the replica of an encrypted dataset stays encrypted (raw)
				if enc := zfstest.Get(t, tgt, "encryption"); enc == "off" {
					s.mismatch(when, tgt+" was received unencrypted")
				}
			}
			s.verify(when, srcDS+"@"+newest, tgt+"@"+newest, ds, now)
		}
	}
}

// observe lists the snapshots of the source and both targets (one zfs
// call each) and compares them with what was seen before: a snapshot gone
// that no prune said it condemns, or back under its name with another
// guid, is lost. It runs after every zsync run, so a snapshot that lives
// only between two checks is followed too.
func (s *soak) observe(when string) {
	t := s.t
	now := map[string]string{}
	for _, root := range []string{s.src + "/soak", s.dst + "/push", s.dst + "/pull"} {
		out := zfstest.Zfs(t, "list", "-H", "-p", "-r", "-t", "snapshot", "-o", "name,guid", root)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Split(l, "\t"); len(f) == 2 {
				now[f[0]] = f[1]
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, guid := range s.seen {
		g, ok := now[name]
		switch {
		case !ok && !s.condemned[name]:
			s.lost = append(s.lost, when+": "+name)
			t.Errorf("%s: snapshot %s is gone and no retention condemned it", when, name)
		case ok && g != guid:
			s.lost = append(s.lost, fmt.Sprintf("%s: %s replaced (guid %s, was %s)", when, name, g, guid))
			t.Errorf("%s: snapshot %s has guid %s, was %s", when, name, g, guid)
		}
		if !ok {
			delete(s.seen, name)
		}
	}
	for name, guid := range now {
		s.seen[name] = guid
	}
}

// verify compares a target snapshot's guid and data with the source's,
// once per target snapshot.
func (s *soak) verify(when, sname, tname, ds string, now map[string]string) {
	if s.verified[tname] {
		return
	}
	s.verified[tname] = true
	if now[tname] != now[sname] {
		s.mismatch(when, fmt.Sprintf("%s guid %s, source %s", tname, now[tname], now[sname]))
		return
	}
	if s.sums == nil {
		s.sums = map[string]string{}
	}
	a, ok := s.sums[sname]
	if !ok {
		a = s.snapshotSum(sname, ds)
		s.sums[sname] = a
	}
	b := s.snapshotSum(tname, ds)
	if a == "" || b == "" || a != b {
		s.mismatch(when, fmt.Sprintf("%s: data %q, source %q", tname, b, a))
	}
}

// verifyAll compares every snapshot the targets and the source both have
// (at the end of the soak).
func (s *soak) verifyAll() {
	t := s.t
	src := listState(t, s.src+"/soak")
	now := map[string]string{}
	for n, g := range src.guid {
		now[n] = g
	}
	for _, c := range []string{"push", "pull"} {
		st := listState(t, s.dst+"/"+c)
		for n, g := range st.guid {
			now[n] = g
		}
		for _, ds := range soakDatasets {
			tgt := s.dst + "/" + c + "/" + s.src + "/" + ds
			for _, snap := range st.snaps[tgt] {
				if _, ok := now[s.src+"/"+ds+"@"+snap]; ok {
					s.verify("end", s.src+"/"+ds+"@"+snap, tgt+"@"+snap, ds, now)
				}
			}
		}
	}
}

func (s *soak) leak(when, what string) {
	s.leaked = append(s.leaked, when+": "+what)
	s.t.Errorf("%s: leaked %s", when, what)
}

func (s *soak) mismatch(when, what string) {
	s.mismatched = append(s.mismatched, when+": "+what)
	s.t.Errorf("%s: mismatch %s", when, what)
}

// snapshotSum is a checksum of a snapshot's data: its files (mounted
// read-only by itself, nothing else of the replica changes) or, for the
// volume, its device's bytes. The encrypted replica's key is loaded for
// the read and unloaded after.
func (s *soak) snapshotSum(snap, ds string) string {
	t := s.t
	fs := snap[:strings.IndexByte(snap, '@')]
	if ds == "soak/vol" {
		return s.volumeSum(snap)
	}
	if ds == "soak/enc" && zfstest.Get(t, fs, "keystatus") != "available" {
		zfstest.Zfs(t, "load-key", "-L", "file://"+s.keyfile, fs)
		defer zfstest.Exec(t, "zfs", "unload-key", fs)
	}
	dir := filepath.Join(t.TempDir(), "snap")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := zfstest.Exec(t, "mount", "-t", "zfs", "-o", "ro", snap, dir); err != nil {
		t.Errorf("mount %s: %v: %s", snap, err, errOut)
		return ""
	}
	sum := treeSumAll(t, dir)
	if _, errOut, err := zfstest.Exec(t, "umount", dir); err != nil {
		t.Errorf("umount %s: %v: %s", dir, err, errOut)
	}
	return sum
}

// volumeSum reads a volume snapshot through a clone's device (the replica
// has volmode=none): the clone is destroyed right after.
func (s *soak) volumeSum(snap string) string {
	t := s.t
	pool := snap[:strings.IndexByte(snap, '/')]
	clone := pool + "/soakclone" + zfstest.RandomSuffix(t, 6)
	zfstest.Zfs(t, "clone", "-o", "volmode=dev", "-o", "readonly=on", snap, clone)
	defer func() {
		// udev may still hold the device for a moment: settle, retry
		for i := 0; ; i++ {
			exec.Command("udevadm", "settle").Run()
			_, errOut, err := zfstest.Exec(t, "zfs", "destroy", clone)
			if err == nil {
				return
			}
			if i == 20 {
				t.Errorf("destroy %s: %v: %s", clone, err, errOut)
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	dev := "/dev/zvol/" + clone
	waitPath(t, dev)
	f, err := os.Open(dev)
	if err != nil {
		t.Errorf("open %s: %v", dev, err)
		return ""
	}
	h := newSum()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		t.Errorf("read %s: %v", dev, err)
		return ""
	}
	return h.String()
}

// treeSumAll hashes every regular file below dir (names and contents).
func treeSumAll(t *testing.T, dir string) string {
	h := newSum()
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	sort.Strings(files)
	for _, p := range files {
		rel, _ := filepath.Rel(dir, p)
		io.WriteString(h, rel+"\x00")
		f, err := os.Open(p)
		if err != nil {
			t.Errorf("read %s: %v", p, err)
			return ""
		}
		io.Copy(h, f)
		f.Close()
	}
	if len(files) == 0 {
		return "(no files)"
	}
	return h.String()
}

func (s *soak) report(rounds int) {
	var kinds []string
	for k := range s.faults {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "SOAK| rounds %d, zsync runs %d\n", rounds, s.runs)
	fmt.Fprintf(&b, "SOAK| %-18s %8s %8s\n", "fault", "rounds", "missed")
	for _, k := range kinds {
		fmt.Fprintf(&b, "SOAK| %-18s %8d %8d\n", k, s.faults[k], s.missed[k])
	}
	up, down := s.proxy.bytes()
	fmt.Fprintf(&b, "SOAK| runs to converge after a fault (max): %d\n", s.maxConverge)
	fmt.Fprintf(&b, "SOAK| bytes through the link: %d to sshd, %d from it; stream sizes of the increments (x2 jobs): %d; ratio %.2f\n",
		up, down, s.needBytes, float64(up+down)/float64(max(s.needBytes, 1)))
	fmt.Fprintf(&b, "SOAK| leaked holds/bookmarks: %d\n", len(s.leaked))
	fmt.Fprintf(&b, "SOAK| snapshots lost that retention did not condemn: %d\n", len(s.lost))
	fmt.Fprintf(&b, "SOAK| data checksum mismatches: %d (snapshots compared: %d)\n", len(s.mismatched), len(s.verified))
	fmt.Fprintf(&b, "SOAK| rounds that did not converge: %d\n", len(s.unconverged))
	for _, l := range [][]string{s.leaked, s.lost, s.mismatched, s.unconverged} {
		for _, x := range l {
			fmt.Fprintf(&b, "SOAK|   %s\n", x)
		}
	}
	fmt.Print(b.String())
	if len(s.leaked)+len(s.lost)+len(s.mismatched)+len(s.unconverged) > 0 {
		s.t.Errorf("soak failed: %d leaked, %d lost, %d mismatched, %d unconverged", len(s.leaked), len(s.lost), len(s.mismatched), len(s.unconverged))
	}
}

// cutProxy forwards 127.0.0.1:port to sshd and can drop every connection
// it carries at once (a cut link), counting the bytes each way.
type cutProxy struct {
	port     int
	mu       sync.Mutex
	conns    map[net.Conn]bool
	up, down atomic.Int64
}

func newCutProxy(t *testing.T, to string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{port: ln.Addr().(*net.TCPAddr).Port, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, to)
		}
	}()
	return p
}

func (p *cutProxy) serve(c net.Conn, to string) {
	far, err := net.Dial("tcp", to)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[far] = true, true
	p.mu.Unlock()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn, n *atomic.Int64) {
		defer wg.Done()
		buf := make([]byte, 64<<10)
		for {
			k, err := src.Read(buf)
			if k > 0 {
				n.Add(int64(k))
				if _, werr := dst.Write(buf[:k]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	wg.Add(2)
	go pipe(far, c, &p.up)
	go pipe(c, far, &p.down)
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, far)
	p.mu.Unlock()
}

// cut drops every open connection (a reset, not a clean close) and returns
// how many there were.
func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
		n++
	}
	return n / 2
}

func (p *cutProxy) bytes() (up, down int64) { return p.up.Load(), p.down.Load() }

type sum struct{ hash.Hash }

func newSum() *sum { return &sum{sha256.New()} }

func (s *sum) String() string { return hex.EncodeToString(s.Sum(nil)) }
