package sync

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// The plan test notation, one case per line:
//
//	s: VERSIONS | r: VERSIONS | t: TOKEN | o: OPTIONS => RESULT
//
// VERSIONS are space-separated "@name" (snapshot) or "#name" (bookmark),
// optionally "=other" (the GUID of name "other": a renamed snapshot, or a
// bookmark named differently from its snapshot) and ":N" (createtxg N).
// Without ":N", versions get createtxgs in the order written, one per
// distinct GUID, so "@a #a" share one. Sender versions live on "src/ds",
// receiver versions on "dst/ds". Creation times run backwards against
// createtxg in every case, so nothing may order by creation time.
//
// TOKEN is "from>to" with GUID names ("" from = full send) and an optional
// " raw". The receiver then also contains its dataset entry with
// receive_resume_token "TOKEN".
//
// OPTIONS: "all", "fail" (initial policy), "raw", "filter=REGEX".
//
// RESULT: an optional `abort(SUBSTRING)` for an aborted token, an optional
// "base=@x", then "uptodate" or steps joined by "; " ("full @b",
// "-i @a..@b", "-I @a..@c", prefixed "resume " for a resumed step), or a
// conflict: "diverged common=@a sender=@b,@c receiver=@x", "nocommon
// sender=@b receiver=@y", "nosender", "nosender filtered", "initialfail".
var planCases = []string{
	// initial replication
	"s: @a @b @c | r: => full @c",
	"s: @a @b @c | o: all => full @a; -I @a..@c",
	"s: @a @b | o: all => full @a; -i @a..@b",
	"s: @a @b | o: fail => initialfail",
	"s: @a #b @c | r: #a => full @c", // receiver bookmarks are ignored
	"s: #a @b | r: => full @b",       // bookmarks are never sent
	"s: @a @b #c | r: => full @b",    // newest is a snapshot, not a bookmark
	"s: | r: => nosender",            // nothing at all
	"s: #a | r: @a => nosender",      // bookmarks only
	"s: @x @y | o: filter=^k => nosender filtered",
	"s: @x @k1 @y @k2 | o: all filter=^k => full @k1; -i @k1..@k2",
	"s: @x @k1 @y @k2 | o: filter=^k => full @k2",

	// up to date and plain incrementals
	"s: @a @b | r: @a @b => base=@b uptodate",
	"s: @a @b | r: @a => base=@a -i @a..@b",
	"s: @a @b @c @d | r: @a @b => base=@b -I @b..@d",
	"s: @b @c | r: @x @b => base=@b -i @b..@c", // older receiver-only snapshots do not matter
	"s: @a #a @b | r: @a => base=@a -i @a..@b", // snapshot preferred over its bookmark

	// snapshot filter: -I over runs of wanted snapshots, -i where one is skipped
	"s: @k1 @x @k2 @y @k3 | r: @k1 | o: filter=^k => base=@k1 -i @k1..@k2; -i @k2..@k3",
	"s: @k1 @k2 @k3 @x @k4 @k5 | r: @k1 | o: filter=^k => base=@k1 -I @k1..@k3; -i @k3..@k4; -i @k4..@k5",
	"s: @k1 @k2 @x | r: @k2 | o: filter=^k => base=@k2 uptodate",
	"s: @x @k1 | r: @x | o: filter=^k => base=@x -i @x..@k1", // the base need not be wanted

	// bookmark as base after the snapshot was destroyed
	"s: #a @b @c | r: @a => base=#a -i #a..@b; -i @b..@c",
	"s: #a @b @c @d | r: @a => base=#a -i #a..@b; -I @b..@d",
	"s: #cur=a @b | r: @a => base=#cur -i #cur..@b",
	"s: #a | r: @a @b => nosender",

	// conflicts
	"s: @a @b @c | r: @a @x @y => diverged common=@a sender=@b,@c receiver=@x,@y",
	"s: #a @c | r: @a @x => diverged common=#a sender=@c receiver=@x",
	"s: @a @b | r: @a @x => diverged common=@a sender=@b receiver=@x",
	"s: @a @c | r: @a @b => diverged common=@a sender=@c receiver=@b", // sender pruned @b without a cursor
	"s: @a @b | r: @x @y => nocommon sender=@b receiver=@y",

	// resume tokens
	"s: @a @b @c | r: @a | t: a>b => base=@a resume -i @a..@b; -i @b..@c",
	"s: @a @b @c @d | r: @a | t: a>b => base=@a resume -i @a..@b; -I @b..@d",
	"s: @a @b | r: @a | t: a>b => base=@a resume -i @a..@b",
	"s: #a @b @c | r: @a | t: a>b => base=#a resume -i #a..@b; -i @b..@c",
	"s: @a @b @c | r: | t: >b => resume full @b; -i @b..@c",
	"s: @a @b @c | r: | t: >a | o: all => resume full @a; -I @a..@c",
	"s: @a @b | r: @a | t: a>b raw | o: raw => base=@a resume -i @a..@b",
	"s: @a @c | r: @a | t: a>b => abort(toguid 0x) base=@a -i @a..@c",
	"s: @a @c | r: @a | t: a>b => abort(no longer exists on the sender) base=@a -i @a..@c",
	"s: @a #b @c | r: @a | t: a>b => abort(no longer exists on the sender) base=@a -i @a..@c",
	"s: @a @b | r: @a @b | t: a>b => abort(not newer than the common base) base=@b uptodate",
	"s: @a @b @c | r: @b | t: a>c => abort(does not match the common base) base=@b -i @b..@c",
	"s: @a @b | r: @a | t: >b => abort(full send) base=@a -i @a..@b",
	"s: @a @b | r: | t: a>b => abort(does not match the common base) full @b",
	"s: @a @b | r: @a | t: a>b raw => abort(token is raw but the plan is not) base=@a -i @a..@b",
	"s: @a @b | r: @a | t: a>b | o: raw => abort(token is not raw but the plan is) base=@a -i @a..@b",
	"s: @a @b | r: @a @x | t: x>b => diverged common=@a sender=@b receiver=@x", // conflicts win

	// GUIDs, not names; createtxg, not names or creation times
	"s: @a @renamed=b @c | r: @a @b => base=@renamed -i @renamed..@c",
	"s: @a @b | r: @a @copy=b => base=@b uptodate",
	"s: @z @m @a | r: @z => base=@z -I @z..@a",
	"s: @c:30 @a:10 @b:20 | r: @a:5 => base=@a -I @a..@c",
	"s: @a @b @c | r: @b:900 @a:100 => base=@b -i @b..@c",
	"s: @a @b @c | r: @a:100 @b:900 | o: all => base=@b -i @b..@c",
	"s: @b:20 #a:10 @a:10 | r: @a => base=@a -i @a..@b", // bookmark before snapshot on a tie
}

func TestPlanDataset(t *testing.T) {
	for _, line := range planCases {
		t.Run(line, func(t *testing.T) {
			sender, receiver, token, opts, want := parsePlanCase(t, line)
			plan, err := PlanDataset(sender, receiver, token, opts)
			if got := renderPlan(plan, err, abortSubstring(want)); got != want {
				t.Errorf("\n got: %s\nwant: %s", got, want)
			}
		})
	}
}

// testGUID derives a non-zero GUID from a name.
func testGUID(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64() | 1
}

var testEpoch = time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)

// parseVersions parses the VERSIONS notation for dataset ds; txgBase offsets
// the default createtxgs so sender and receiver txgs never coincide.
func parseVersions(t *testing.T, ds, s string, txgBase uint64) []zfs.Entry {
	t.Helper()
	var out []zfs.Entry
	txgOf := make(map[uint64]uint64)
	next := txgBase
	for _, f := range strings.Fields(s) {
		typ, sep := zfs.Snapshot, "@"
		switch f[0] {
		case '@':
		case '#':
			typ, sep = zfs.Bookmark, "#"
		default:
			t.Fatalf("bad version %q", f)
		}
		f = f[1:]
		var txg uint64
		if name, n, ok := strings.Cut(f, ":"); ok {
			v, err := strconv.ParseUint(n, 10, 64)
			if err != nil {
				t.Fatalf("bad txg in %q: %v", f, err)
			}
			f, txg = name, v
		}
		name, guidName, ok := strings.Cut(f, "=")
		if !ok {
			guidName = name
		}
		guid := testGUID(guidName)
		if txg == 0 {
			if v, ok := txgOf[guid]; ok {
				txg = v
			} else {
				next += 10
				txg = next
			}
		}
		txgOf[guid] = txg
		out = append(out, zfs.Entry{
			Name: ds + sep + name, Type: typ, GUID: guid, CreateTXG: txg,
			Creation: testEpoch.Add(-time.Duration(txg) * time.Minute),
		})
	}
	return out
}

func parsePlanCase(t *testing.T, line string) (sender, receiver []zfs.Entry, token *zfs.ResumeToken, o PlanOptions, want string) {
	t.Helper()
	in, want, ok := strings.Cut(line, "=>")
	if !ok {
		t.Fatalf("no => in %q", line)
	}
	want = strings.TrimSpace(want)
	for _, sec := range strings.Split(in, "|") {
		key, val, ok := strings.Cut(strings.TrimSpace(sec), ":")
		if !ok {
			t.Fatalf("bad section %q", sec)
		}
		val = strings.TrimSpace(val)
		switch key {
		case "s":
			sender = parseVersions(t, "src/ds", val, 0)
		case "r":
			receiver = append(receiver, parseVersions(t, "dst/ds", val, 1000)...)
		case "t":
			fields := strings.Fields(val)
			from, to, ok := strings.Cut(fields[0], ">")
			if !ok {
				t.Fatalf("bad token %q", val)
			}
			token = &zfs.ResumeToken{ToGUID: testGUID(to), ToName: "src/ds@" + to}
			if from != "" {
				token.FromGUID = testGUID(from)
			}
			token.Raw = len(fields) > 1 && fields[1] == "raw"
			receiver = append(receiver, zfs.Entry{Name: "dst/ds", Type: zfs.Filesystem, GUID: 77, ResumeToken: "TOKEN"})
		case "o":
			for _, f := range strings.Fields(val) {
				switch {
				case f == "all":
					o.Initial = InitialAll
				case f == "fail":
					o.Initial = InitialFail
				case f == "raw":
					o.Raw = true
				case strings.HasPrefix(f, "filter="):
					o.SnapshotFilter = regexp.MustCompile(strings.TrimPrefix(f, "filter="))
				default:
					t.Fatalf("bad option %q", f)
				}
			}
		default:
			t.Fatalf("bad section key %q", key)
		}
	}
	return sender, receiver, token, o, want
}

// short renders a version as "@x" or "#x".
func short(e zfs.Entry) string {
	_, sep, s := zfs.SplitName(e.Name)
	return string(sep) + s
}

func shorts(es []zfs.Entry) string {
	var s []string
	for _, e := range es {
		s = append(s, short(e))
	}
	return strings.Join(s, ",")
}

// abortSubstring returns the SUBSTRING of a leading "abort(SUBSTRING)".
func abortSubstring(want string) string {
	rest, ok := strings.CutPrefix(want, "abort(")
	if !ok {
		return ""
	}
	sub, _, _ := strings.Cut(rest, ")")
	return sub
}

// renderPlan renders a plan or conflict in the RESULT notation. An abort
// reason is rendered as abortSub when it contains it, else in full.
func renderPlan(p Plan, err error, abortSub string) string {
	var (
		div *DivergedError
		nc  *NoCommonError
		ns  *NoSenderSnapshotsError
		ir  *InitialReplicationError
	)
	switch {
	case err == nil:
	case errors.As(err, &div):
		return fmt.Sprintf("diverged common=%s sender=%s receiver=%s", short(div.Common), shorts(div.SenderOnly), shorts(div.ReceiverOnly))
	case errors.As(err, &nc):
		return fmt.Sprintf("nocommon sender=%s receiver=%s", short(nc.SenderNewest), short(nc.ReceiverNewest))
	case errors.As(err, &ns):
		if ns.Filtered {
			return "nosender filtered"
		}
		return "nosender"
	case errors.As(err, &ir):
		return "initialfail"
	default:
		return "error: " + err.Error()
	}
	var parts []string
	if p.AbortResume {
		reason := p.AbortReason
		if abortSub != "" && strings.Contains(reason, abortSub) {
			reason = abortSub
		}
		parts = append(parts, "abort("+reason+")")
	}
	if p.Base != nil {
		parts = append(parts, "base="+short(*p.Base))
	}
	if len(p.Steps) == 0 {
		parts = append(parts, "uptodate")
	}
	var steps []string
	for _, s := range p.Steps {
		var b strings.Builder
		if s.ResumeToken != "" {
			if s.ResumeToken != "TOKEN" {
				return "bad resume token text " + s.ResumeToken
			}
			b.WriteString("resume ")
		}
		switch {
		case s.Full():
			b.WriteString("full " + short(s.To))
		case s.Intermediates:
			b.WriteString("-I " + short(s.From) + ".." + short(s.To))
		default:
			b.WriteString("-i " + short(s.From) + ".." + short(s.To))
		}
		steps = append(steps, b.String())
	}
	if len(steps) > 0 {
		parts = append(parts, strings.Join(steps, "; "))
	}
	return strings.Join(parts, " ")
}

func TestConflictErrors(t *testing.T) {
	e := func(name string) zfs.Entry { return zfs.Entry{Name: name} }
	var many []zfs.Entry
	for i := range 13 {
		many = append(many, e(fmt.Sprintf("dst/ds@x%d", i)))
	}
	for _, c := range []struct {
		err  error
		want string
	}{
		{&DivergedError{Common: e("src/ds@a"), SenderOnly: []zfs.Entry{e("src/ds@b"), e("src/ds@c")}, ReceiverOnly: []zfs.Entry{e("dst/ds@x")}},
			"sender and receiver diverged after common version src/ds@a: receiver-only snapshots: dst/ds@x; sender-only snapshots: src/ds@b, src/ds@c"},
		{&DivergedError{Common: e("src/ds#a"), ReceiverOnly: many},
			"sender and receiver diverged after common version src/ds#a: receiver-only snapshots: dst/ds@x0, dst/ds@x1, dst/ds@x2, dst/ds@x3, dst/ds@x4, dst/ds@x5, dst/ds@x6, dst/ds@x7, dst/ds@x8, dst/ds@x9, and 3 more; sender-only snapshots: none"},
		{&NoCommonError{SenderNewest: e("src/ds@b"), ReceiverNewest: e("dst/ds@y")},
			"no common snapshot or bookmark between sender and receiver (sender's newest is src/ds@b, receiver's newest is dst/ds@y)"},
		{&NoSenderSnapshotsError{Dataset: "src/ds"}, "src/ds: sender has no snapshots"},
		{&NoSenderSnapshotsError{Dataset: "src/ds", Filtered: true}, "src/ds: sender has no snapshots that the snapshot filter selects"},
		{&NoSenderSnapshotsError{}, "sender has no snapshots"},
		{&InitialReplicationError{Dataset: "src/ds"}, "src/ds: receiver has no snapshots and initial replication is set to fail"},
	} {
		if got := c.err.Error(); got != c.want {
			t.Errorf("got  %q\nwant %q", got, c.want)
		}
		if !errors.Is(fmt.Errorf("wrapped: %w", c.err), ErrConflict) {
			t.Errorf("%T does not wrap ErrConflict", c.err)
		}
	}
}

func TestPlanDatasetBadInput(t *testing.T) {
	ok := []zfs.Entry{{Name: "src/ds@a", Type: zfs.Snapshot, GUID: 1, CreateTXG: 1}}
	for _, c := range []struct {
		name             string
		sender, receiver []zfs.Entry
	}{
		{"sender guid 0", []zfs.Entry{{Name: "src/ds@a", Type: zfs.Snapshot}}, nil},
		{"receiver guid 0", ok, []zfs.Entry{{Name: "dst/ds@a", Type: zfs.Snapshot}}},
		{"two sender datasets", append(slices.Clone(ok), zfs.Entry{Name: "src/other#b", Type: zfs.Bookmark, GUID: 2}), nil},
		{"two receiver datasets", ok, []zfs.Entry{{Name: "dst/ds@a", Type: zfs.Snapshot, GUID: 1}, {Name: "dst/x@b", Type: zfs.Snapshot, GUID: 2}}},
	} {
		p, err := PlanDataset(c.sender, c.receiver, nil, PlanOptions{})
		if err == nil || errors.Is(err, ErrConflict) || len(p.Steps) != 0 {
			t.Errorf("%s: got %+v, %v; want a non-conflict error", c.name, p, err)
		}
	}
	// Datasets, filesystems and receiver bookmarks are ignored, not errors.
	p, err := PlanDataset(append(slices.Clone(ok), zfs.Entry{Name: "src/ds", Type: zfs.Filesystem}),
		[]zfs.Entry{{Name: "dst/ds", Type: zfs.Filesystem}, {Name: "dst/ds#a", Type: zfs.Bookmark, GUID: 1}}, nil, PlanOptions{})
	if err != nil || len(p.Steps) != 1 || !p.Steps[0].Full() {
		t.Errorf("got %+v, %v; want one full step", p, err)
	}
}

func TestStepString(t *testing.T) {
	a := zfs.Entry{Name: "tank/a@1", Type: zfs.Snapshot}
	c := zfs.Entry{Name: "tank/a#c", Type: zfs.Bookmark}
	b := zfs.Entry{Name: "tank/a@5", Type: zfs.Snapshot}
	for _, s := range []struct {
		step Step
		want string
	}{
		{Step{To: b}, "full tank/a@5"},
		{Step{From: c, To: b}, "-i tank/a#c..tank/a@5"},
		{Step{From: a, To: b, Intermediates: true}, "-I tank/a@1..tank/a@5"},
		{Step{From: a, To: b, ResumeToken: "1-abc"}, "resume -i tank/a@1..tank/a@5"},
		{Step{To: b, ResumeToken: "1-abc"}, "resume full tank/a@5"},
	} {
		if got := s.step.String(); got != s.want {
			t.Errorf("got %q, want %q", got, s.want)
		}
	}
}

func TestPlanDatasetTokenWithoutText(t *testing.T) {
	sender := parseVersions(t, "src/ds", "@a @b", 0)
	receiver := parseVersions(t, "dst/ds", "@a", 1000)
	tok := &zfs.ResumeToken{FromGUID: testGUID("a"), ToGUID: testGUID("b")}
	if _, err := PlanDataset(sender, receiver, tok, PlanOptions{}); err == nil || errors.Is(err, ErrConflict) {
		t.Errorf("token without its text: got %v, want a non-conflict error", err)
	}
	receiver = append(receiver, zfs.Entry{Name: "dst/ds", Type: zfs.Filesystem, ResumeToken: "1-abc-def"})
	p, err := PlanDataset(sender, receiver, tok, PlanOptions{})
	if err != nil || len(p.Steps) != 1 || p.Steps[0].ResumeToken != "1-abc-def" {
		t.Errorf("got %+v, %v; want one step resuming 1-abc-def", p, err)
	}
}
