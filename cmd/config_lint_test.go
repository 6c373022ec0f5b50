package cmd

import (
	"fmt"
	"strings"
	"testing"
)

// job is a [[job]] table for the lint cases: name, type, one dataset
// pattern (or several, comma-separated), root ("" for none) and more lines.
func job(name, typ, datasets, root, more string) string {
	var ds []string
	for _, d := range strings.Split(datasets, ",") {
		ds = append(ds, fmt.Sprintf("%q", strings.TrimSpace(d)))
	}
	s := fmt.Sprintf("[[job]]\nname = %q\ntype = %q\ndatasets = [%s]\n", name, typ, strings.Join(ds, ", "))
	if root != "" {
		s += fmt.Sprintf("root = %q\n", root)
	}
	return s + more
}

const (
	every15m = "  [job.snapshot]\n  interval = \"15m\"\n"
	remoteB  = "  [job.remote]\n  host = \"b\"\n"
)

// config check warns about (or refuses) what a newcomer must be told, at
// the line and key to change, and says how; warnings keep exit 0.
func TestConfigCheckLint(t *testing.T) {
	cases := []struct {
		name, body string
		code       int
		want       []string // each a substring of one line of stderr, one line per problem
	}{
		{"empty file", "", 0, []string{": warning: the file is empty"}},
		{"only comments", "# nothing yet\n\n", 0, []string{": warning: the file is empty"}},
		{"no jobs", "[global]\nstate_dir = \"/var/lib/zsync\"\n", 0, []string{": warning: no [[job]] and no [[serve.client]]"}},

		{"relative paths", "[global]\nstate_dir = \"state\"\nmetrics_file = \"m.prom\"\nzfs_binary = \"./zfs\"\n" +
			job("j", "push", "tank/a", "b/a", remoteB+"  identity_file = \"id\"\n  known_hosts = \"kh\"\n"+
				"  [job.snapshot]\n  interval = \"1h\"\n  pre_hook = [\"bin/freeze\"]\n  post_hook = [\"../thaw\", \"x/y\"]\n"), 0,
			[]string{
				`:2: global.state_dir: warning: relative path "state"`,
				`:3: global.metrics_file: warning: relative path "m.prom"`,
				`:4: global.zfs_binary: warning: relative path "./zfs"`,
				`:12: job[0].remote.identity_file: warning: relative path "id"`,
				`:13: job[0].remote.known_hosts: warning: relative path "kh"`,
				`:16: job[0].snapshot.pre_hook[0]: warning: relative path "bin/freeze"`,
				`:17: job[0].snapshot.post_hook[0]: warning: relative path "../thaw"`,
			}},

		{"push without interval", job("p", "push", "tank/a<", "b/a", remoteB), 0,
			[]string{":1: job[0].snapshot.interval: warning: this push job takes no snapshots"}},
		{"pull hooks", job("p", "pull", "tank/a", "b/a", remoteB+"  [job.snapshot]\n  pre_hook = [\"/bin/true\"]\n"), 0,
			[]string{":9: job[0].snapshot.pre_hook: warning: a pull job takes no snapshots, so this hook never runs"}},

		{"same dataset to the same target", job("a", "push", "tank/home<", "b/laptop", remoteB+every15m) +
			job("b", "push", "tank<", "b/laptop", remoteB+"  port = 22\n  [job.snapshot]\n  interval = \"1h\"\n  prefix = \"b_\"\n"), 0,
			[]string{`:13: job[1].datasets: warning: this job and job "a" both replicate tank/home on this host to b/laptop/tank/home on b: ` +
				`both jobs' prune rules apply to the one replica and their runs do not wait for each other; ` +
				`if they run on two hosts sharing this file, it is worse: two sources can never share one replica`}},
		{"same dataset, same target, all local", job("a", "push", "tank/home<", "backup/l", every15m) + job("b", "push", "tank<", "backup/l", "  [job.snapshot]\n  interval = \"1h\"\n  prefix = \"b_\"\n"), 0,
			[]string{`:11: job[1].datasets: warning: this job and job "a" both replicate tank/home on this host to backup/l/tank/home on this host: ` +
				`both jobs' prune rules apply to the one replica and their runs do not wait for each other; keep each dataset`}},
		// two names may name one host: the same dataset from "nas" and from
		// "nas.vpn.example.net" is one source replicated twice
		{"two host names, one replica", job("a", "pull", "tank/data<", "pool/r", "  [job.remote]\n  host = \"nas\"\n") +
			job("c", "pull", "tank/data", "pool/r", "  [job.remote]\n  host = \"nas.vpn.example.net\"\n"), 0,
			[]string{`:12: job[1].root: warning: this job and job "a" both receive into pool/r/tank/data on this host, from tank/data on nas and tank/data on nas.vpn.example.net: ` +
				`if nas and nas.vpn.example.net are two hosts, two sources can never share one replica`}},
		{"two datasets of one far host, one replica", job("a", "pull", "tank/data<", "pool/r", remoteB+"  [job.replication]\n  strip_components = 1\n") +
			job("c", "pull", "pool/data<", "pool/r", remoteB+"  [job.replication]\n  strip_components = 1\n"), 0,
			[]string{`:14: job[1].root: warning: this job and job "a" both receive into pool/r/data on this host, from tank/data on b and pool/data on b: ` +
				`if both jobs run on one host, two sources can never share one replica`}},
		{"two sources, one replica on a far host", job("a", "push", "tank/data<", "backup/r", remoteB+every15m+"  [job.replication]\n  strip_components = 1\n") +
			job("c", "push", "pool/data<", "backup/r", remoteB+every15m+"  prefix = \"c_\"\n  [job.replication]\n  strip_components = 1\n"), ExitUsage,
			[]string{`:16: job[1].root: this job and job "a" both receive into backup/r/data on b, from tank/data on this host and pool/data on this host: two sources can never share one replica`}},
		{"two sources, one local replica", job("a", "push", "tank/data<", "backup/r", every15m+"  [job.replication]\n  strip_components = 1\n") +
			job("c", "push", "pool/data<", "backup/r", every15m+"  prefix = \"c_\"\n  [job.replication]\n  strip_components = 1\n"), ExitUsage,
			[]string{`:14: job[1].root: this job and job "a" both receive into backup/r/data on this host, from tank/data on this host and pool/data on this host: two sources can never share one replica`}},
		{"same dataset, one snapshot series", job("a", "snap", "tank<", "", every15m) + job("b", "push", "tank/home<", "b/h", remoteB+"  [job.snapshot]\n  interval = \"1h\"\n"), 0,
			[]string{`:14: job[1].snapshot.prefix: warning: this job and job "a" both take zsync_ snapshots of tank/home`}},

		{"target inside its source", job("l", "push", "tank<", "tank/backup", every15m), ExitUsage,
			[]string{`:5: job[0].root: the replicas land inside the datasets this job sends: tank is replicated to tank/backup/tank, which tank< selects again, ` +
				`so every run would replicate the replicas (and snapshots taken there make them diverge); exclude the root in datasets (add "!tank/backup<")`}},
		{"pull into its own source", job("l", "pull", "tank<", "tank/backup", ""), ExitUsage,
			[]string{`:5: job[0].root: the replicas land inside the datasets this job sends`}},
		{"snapshots of local replicas", job("r", "pull", "tank/data<", "backup/r", "") + job("s", "snap", "backup<", "", every15m), ExitUsage,
			[]string{`:9: job[1].datasets: this job snapshots backup/r/tank/data, the replica job "r" receives tank/data into`}},
		{"snapshots of pulled replicas", job("r", "pull", "tank/data<", "backup/r", remoteB) + job("s", "snap", "backup<", "", every15m), 0,
			[]string{`:11: job[1].datasets: warning: this job selects backup/r/tank/data, where the replica job "r" receives tank/data: if both jobs run on one host, ` +
				`a snapshot this job takes there makes the replica diverge`}},
		// one file for a laptop (the push job) and its backup host (the pull
		// job): which host runs which job is not in the file
		{"one file for two hosts", job("laptop-home", "push", "tank<", "tank/backups/laptop", "  [job.remote]\n  host = \"server\"\n"+every15m) +
			job("server-pull-nas", "pull", "tank/media<", "tank/backups/nas", "  [job.remote]\n  host = \"nas\"\n"), 0,
			[]string{`:4: job[0].datasets: warning: this job selects tank/backups/nas/tank/media, where the replica job "server-pull-nas" receives tank/media: if both jobs run on one host`}},

		// a client is disabled by removing its send
		{"client that can do nothing", "[[serve.client]]\nname = \"x\"\n", 0,
			[]string{`:1: serve.client[0]: warning: client "x" can do nothing`}},
		// append_only wins, as it always did
		{"append_only and prune_send", "[[serve.client]]\nname = \"x\"\nsend = [\"tank<\"]\nappend_only = true\nprune_send = true\n", 0,
			[]string{`:5: serve.client[0].prune_send: warning: prune_send = true takes no effect: append_only refuses every destroy`}},
		{"append_only and target prune", job("h", "push", "tank/h<", "backup/laptop", remoteB+every15m+
			"  [job.replication]\n  on_diverged = \"rotate\"\n  [job.prune]\n  target = [{ last_n = 10 }]\n") +
			"[[serve.client]]\nname = \"laptop\"\nreceive_root = \"backup\"\nappend_only = true\n", 0,
			[]string{`:13: job[0].prune.target: warning: serve client "laptop" is append_only and receives below backup: where it is this job's far side, it refuses every target prune`,
				`:11: job[0].replication.on_diverged: warning: serve client "laptop" is append_only`}},

		// the run would cut it to 10 / concurrency and warn each time
		{"max_streams beyond the session budget", job("p", "push", "tank/a<", "b/a", every15m+remoteB+
			"  max_streams = 4\n  [job.replication]\n  concurrency = 3\n"), 0,
			[]string{`:10: job[0].remote.max_streams: warning: max_streams = 4 with concurrency = 3 would open 12 SSH sessions on one connection, ` +
				`more than sshd's default MaxSessions (10): each run uses 3 channels per stream instead; set max_streams = 3`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := configFile(t, c.body)
			code, _, errOut := runUnit(t, "--config", p, "config", "check")
			if code != c.code {
				t.Fatalf("exit %d, want %d:\n%s", code, c.code, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			for _, w := range c.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, p) && strings.Contains(l, w)
				}
				if !found {
					t.Errorf("no line with %q:\n%s", w, errOut)
				}
			}
			problems := len(lines)
			if c.code != 0 {
				problems-- // the summary
			}
			if problems != len(c.want) {
				t.Errorf("%d problems, want %d:\n%s", problems, len(c.want), errOut)
			}
		})
	}
}

// What is fine is not warned about.
func TestConfigCheckLintQuiet(t *testing.T) {
	cases := map[string]string{
		"paths that are not relative": "[global]\nzfs_binary = \"zfs\"\n" + job("j", "push", "tank/a", "b/a",
			remoteB+"  identity_file = \"~/.ssh/id\"\n  known_hosts = \"/etc/zsync/kh\"\n  [job.snapshot]\n  interval = \"1h\"\n  pre_hook = [\"db-freeze\", \"x/y\"]\n"),
		"a snap job takes the push job's snapshots": job("s", "snap", "tank<", "", every15m) + job("p", "push", "tank/a<", "b/a", remoteB),
		"two targets of one dataset": job("a", "push", "tank/a<", "b/a", remoteB+every15m) + job("c", "push", "tank/a<", "b/a",
			"  [job.remote]\n  host = \"c\"\n"),
		"two roots on one target":  job("a", "push", "tank/a<", "b/a", remoteB+every15m) + job("c", "push", "tank/a<", "b/c", remoteB),
		"excluded part of a job":   job("a", "push", "tank<, !tank/home<", "b/x", remoteB+every15m) + job("c", "push", "tank/home<", "b/x", remoteB+every15m+"  prefix = \"c_\"\n"),
		"two prefixes":             job("a", "snap", "tank<", "", every15m) + job("b", "snap", "tank<", "", every15m+"  prefix = \"hourly_\"\n"),
		"replicas excluded":        job("l", "push", "tank<, !tank/backup<", "tank/backup", every15m),
		"local push to other pool": job("l", "push", "tank<", "backup/tank", every15m) + job("s", "snap", "tank<", "", "  [job.snapshot]\n  interval = \"1h\"\n  prefix = \"h_\"\n"),
		"append_only, local push": job("h", "push", "tank/h<", "backup/laptop", every15m+"  [job.prune]\n  target = [{ last_n = 10 }]\n") +
			"[[serve.client]]\nname = \"laptop\"\nreceive_root = \"backup\"\nappend_only = true\n",
		"send-only client": "[[serve.client]]\nname = \"x\"\nsend = [\"tank<\"]\n",
		"max_streams within the session budget": job("p", "push", "tank/a<", "b/a", every15m+remoteB+
			"  max_streams = 5\n  [job.replication]\n  concurrency = 2\n"),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runUnit(t, "--config", configFile(t, body), "config", "check")
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d:\n%s", code, errOut)
			}
		})
	}
}
