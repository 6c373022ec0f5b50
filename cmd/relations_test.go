package cmd

import (
	"errors"
	"slices"
	"strings"
	"testing"

	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

const (
	deadID zsync.TargetID = "1111111111111111"
	liveID zsync.TargetID = "2222222222222222"
)

// pinsListing is tank/d with snapshots s1..s5 (guid 100+i, createtxg 10*i),
// the cursor of deadID at s1, the cursor of liveID at s4, a step hold of
// deadID on s2 and a last-received hold of deadID on another dataset.
func pinsListing() ([]zfs.Entry, map[string][]string) {
	var list []zfs.Entry
	for i := uint64(1); i <= 5; i++ {
		list = append(list, zfs.Entry{Name: "tank/d@s" + string(rune('0'+i)), Type: zfs.Snapshot, GUID: 100 + i, CreateTXG: 10 * i})
	}
	list = append(list,
		zfs.Entry{Name: "tank/d#" + zsync.CursorName(deadID, 101), Type: zfs.Bookmark, GUID: 101, CreateTXG: 10},
		zfs.Entry{Name: "tank/d#" + zsync.CursorName(liveID, 104), Type: zfs.Bookmark, GUID: 104, CreateTXG: 40},
		zfs.Entry{Name: "tank/e@x", Type: zfs.Snapshot, GUID: 7, CreateTXG: 5, UserRefs: 1},
	)
	holds := map[string][]string{
		"tank/d@s2": {zsync.StepHoldTag(deadID)},
		"tank/e@x":  {zsync.LastReceivedHoldTag(deadID)},
	}
	return list, holds
}

func TestRelationPins(t *testing.T) {
	list, holds := pinsListing()
	abs, foreign := zsync.ListAbstractions(list, holds)
	if len(foreign) > 0 {
		t.Fatalf("foreign: %v", foreign)
	}
	got := map[string]string{}
	for _, r := range zsync.Relations(abs) {
		p, k := relationPins(r, abs, list)
		got[r.Dataset+" "+r.Side.String()+" "+string(r.ID)] = strings.Join(p, ",") + " | " + strings.Join(k, ",")
	}
	want := map[string]string{
		// its cursor's snapshot and its held one; oldest cursor: s2..s4 count as not replicated because of it
		"tank/d source " + string(deadID): "tank/d@s1,tank/d@s2 | tank/d@s2,tank/d@s3,tank/d@s4",
		// not the oldest cursor: keeps nothing through not_replicated
		"tank/d source " + string(liveID): "tank/d@s4 | ",
		"tank/e target " + string(deadID): "tank/e@x | ",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: pins %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("relations %v, want %d", got, len(want))
	}

	// the only cursor of a dataset keeps nothing through not_replicated
	// (without any cursor every snapshot counts as not replicated)
	var only []zfs.Entry
	for _, e := range list {
		if !strings.Contains(e.Name, string(liveID)) {
			only = append(only, e)
		}
	}
	abs, _ = zsync.ListAbstractions(only, nil)
	for _, r := range zsync.Relations(abs) {
		if p, k := relationPins(r, abs, only); !slices.Equal(p, []string{"tank/d@s1"}) || len(k) != 0 {
			t.Errorf("only cursor: protects %v keeps %v, want [tank/d@s1] and nothing", p, k)
		}
	}
}

func TestMinimalRoots(t *testing.T) {
	src, dst := minimalRoots(
		[]string{"tank/a", "tank/a/b", "tank/c", "tank/c", "pool/x/y"},
		[]string{"backup/r", "tank/a/t", "pool/x", "backup/r"},
	)
	if !slices.Equal(src, []string{"tank/a", "tank/c"}) || !slices.Equal(dst, []string{"backup/r", "pool/x"}) {
		t.Errorf("minimalRoots = %v, %v", src, dst)
	}
}

// The claims a relationship is judged against depend on where it was found.
func TestClaimsAt(t *testing.T) {
	cfg, err := parseConfig("t.toml", `
[[job]]
name = "local"
type = "push"
datasets = ["tank/a<"]
root = "backup/l"
[[job]]
name = "far"
type = "push"
datasets = ["tank/b<"]
root = "pool/r"
  [job.remote]
  host = "backup.example.net"
[[job]]
name = "farpull"
type = "pull"
datasets = ["src/c<"]
root = "backup/p"
  [job.remote]
  host = "src.example.net"
[[serve.client]]
name = "laptop"
receive_root = "backup/laptop"
send = ["tank/served<"]
`)
	if err != nil {
		t.Fatal(err)
	}
	lv := &liveness{live: map[zsync.TargetID]string{liveID: "job local"}}
	down := errors.New("connection refused")
	far, _ := cfg.Job("far")
	farpull, _ := cfg.Job("farpull")
	local, _ := cfg.Job("local")
	lv.local = append(uncheckedClaims(far, down), uncheckedClaims(farpull, down)...)
	lv.local = append(lv.local, serveClaims(cfg)...)
	tests := []struct {
		job  *jobConfig
		side zsync.RelationSide
		ds   string
		id   zsync.TargetID
		want zsync.Liveness
		why  string
	}{
		{local, zsync.SenderSide, "tank/a", liveID, zsync.Live, "job local"},
		{local, zsync.SenderSide, "tank/a", deadID, zsync.Orphaned, "one-off"},
		{local, zsync.ReceiverSide, "backup/l/tank/a", deadID, zsync.Orphaned, "one-off"},
		// a job that is down could own its sources here
		{far, zsync.SenderSide, "tank/b/x", deadID, zsync.Unknown, "job far, which could own it, could not be checked: connection refused"},
		// on a far host everything may belong to another host's job
		{far, zsync.ReceiverSide, "pool/r/tank/b", deadID, zsync.Unknown, "on backup.example.net, the far side of job far"},
		{farpull, zsync.SenderSide, "src/c", deadID, zsync.Unknown, "on src.example.net"},
		// a pull job that is down could own what is below its local root
		{farpull, zsync.ReceiverSide, "backup/p/src/c", deadID, zsync.Unknown, "job farpull"},
		// areas of this host's serve clients
		{local, zsync.SenderSide, "tank/served/d", deadID, zsync.Unknown, "send area of [[serve.client]] \"laptop\""},
		{local, zsync.ReceiverSide, "backup/laptop/x", deadID, zsync.Unknown, "receive_root of [[serve.client]] \"laptop\""},
		{local, zsync.ReceiverSide, "tank/served/d", deadID, zsync.Orphaned, "one-off"},
	}
	for _, tc := range tests {
		r := zsync.Relation{Dataset: tc.ds, ID: tc.id, Side: tc.side}
		got, why := zsync.Judge(r, lv.live, lv.claimsAt(tc.job, tc.side))
		if got != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("job %s, %s side of %s: %v %q, want %v with %q", tc.job.Name, tc.side, tc.ds, got, why, tc.want, tc.why)
		}
	}
}
