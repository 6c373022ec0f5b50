package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

// below returns a Claim.Covers for root and its descendants.
func below(root string) func(string) bool {
	return func(ds string) bool { return zfs.IsDescendant(ds, root) }
}

func TestJudge(t *testing.T) {
	const live, dead TargetID = "1111111111111111", "2222222222222222"
	liveIDs := map[TargetID]string{live: "job home: tank/a -> backup/tank/a"}
	down := Claim{Side: SenderSide, Covers: below("tank/a"), Reason: "job home could not be checked"}
	served := Claim{Side: SenderSide, Covers: below("tank/served"), Reason: "send area of client laptop"}
	received := Claim{Side: ReceiverSide, Covers: below("backup"), Reason: "receive_root of client laptop"}
	far := Claim{Reason: "on a far host"}
	tests := []struct {
		name    string
		ds      string
		side    RelationSide
		id      TargetID
		claims  []Claim
		want    Liveness
		wantWhy string
	}{
		{"used by a job", "tank/a", SenderSide, live, nil, Live, "job home"},
		{"used by a job, even where a claim covers it", "tank/a", SenderSide, live, []Claim{down, far}, Live, "job home"},
		{"nobody uses it, nothing could own it", "tank/a", SenderSide, dead, nil, Orphaned, OrphanReason},
		{"the orphan reason names one-off use", "tank/a", SenderSide, dead, nil, Orphaned, "one-off"},
		{"a job that could own it is down", "tank/a/child", SenderSide, dead, []Claim{down}, Unknown, "job home could not be checked"},
		{"a job that is down cannot own datasets it does not cover", "tank/b", SenderSide, dead, []Claim{down}, Orphaned, OrphanReason},
		{"a sender-side claim does not cover last-received holds", "tank/a", ReceiverSide, dead, []Claim{down}, Orphaned, OrphanReason},
		{"inside a serve client's send area", "tank/served/x", SenderSide, dead, []Claim{served}, Unknown, "send area"},
		{"inside a serve client's receive root", "backup/laptop/tank/x", ReceiverSide, dead, []Claim{served, received}, Unknown, "receive_root"},
		{"a claim without Covers and Side covers everything", "pool/x", ReceiverSide, dead, []Claim{far}, Unknown, "far host"},
		{"several claims: every reason once", "tank/a", SenderSide, dead, []Claim{down, far, down}, Unknown, "job home could not be checked; on a far host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := Relation{Dataset: tc.ds, ID: tc.id, Side: tc.side}
			got, why := Judge(r, liveIDs, tc.claims)
			if got != tc.want || !strings.Contains(why, tc.wantWhy) {
				t.Errorf("Judge = %v %q, want %v with %q", got, why, tc.want, tc.wantWhy)
			}
			if got == Unknown && strings.Count(why, tc.wantWhy) != 1 {
				t.Errorf("reason %q repeats %q", why, tc.wantWhy)
			}
		})
	}
}

func TestRelationsGroupsByDatasetSideAndID(t *testing.T) {
	abs := parseAbstractions(t, "C:a C:b! S:b T:c L:d L:e! C:f~ S:a")
	var got []string
	for _, r := range Relations(abs) {
		got = append(got, fmt.Sprintf("%s %s %s %s", r.Dataset, r.Side, r.ID, renderAbstractions(t, r.Abstractions)))
	}
	want := []string{
		"tank/ds source " + string(testTID) + " C:a S:a S:b T:c",
		"tank/ds source " + string(otherTID) + " C:b!",
		"tank/ds target " + string(testTID) + " L:d",
		"tank/ds target " + string(otherTID) + " L:e!",
		"tank/other source " + string(testTID) + " C:f~",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Relations:\n got %q\nwant %q", got, want)
	}
}

// liveEP is an Endpoint for LiveRelations: the target root's properties and
// the source's datasets. Every other method panics (the embedded nil).
type liveEP struct {
	Endpoint
	props   map[string]map[string]string
	getErr  error
	list    []zfs.Entry
	listErr error
}

func (e *liveEP) Get(_ context.Context, names, _ []string) (map[string]map[string]string, error) {
	if e.getErr != nil {
		return nil, e.getErr
	}
	return e.props, nil
}

func (e *liveEP) List(context.Context, []string, zfs.ListOptions) ([]zfs.Entry, error) {
	return e.list, e.listErr
}

func TestLiveRelations(t *testing.T) {
	const rootTID TargetID = "0123456789abcdef"
	withID := map[string]map[string]string{"backup/r": {TargetIDProperty: string(rootTID)}}
	sources := []zfs.Entry{
		{Name: "tank/a", Type: zfs.Filesystem},
		{Name: "tank/a/ph", Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: "tank/a/ph"}},
		{Name: "tank/a/ph/kid", Type: zfs.Filesystem, User: map[string]string{PlaceholderProperty: "tank/a/ph"}},
		{Name: "tank/a/skip", Type: zfs.Filesystem},
	}
	tests := []struct {
		name    string
		dst     *liveEP
		src     *liveEP
		want    []string // "source -> target"
		wantErr bool
	}{
		{name: "selected sources, placeholders and excluded ones left out", dst: &liveEP{props: withID}, src: &liveEP{list: sources},
			want: []string{"tank/a -> backup/r/tank/a", "tank/a/ph/kid -> backup/r/tank/a/ph/kid"}},
		// a missing root (a pool not imported now) or id tells nothing: the
		// job's relationships must not look orphaned
		{name: "target root without id: unknown", dst: &liveEP{props: map[string]map[string]string{"backup/r": {TargetIDProperty: "-"}}}, src: &liveEP{list: sources}, wantErr: true},
		{name: "no target root: unknown", dst: &liveEP{getErr: fmt.Errorf("get: %w", zfs.ErrDatasetNotFound)}, src: &liveEP{list: sources}, wantErr: true},
		{name: "target unreadable", dst: &liveEP{getErr: errors.New("connection reset")}, src: &liveEP{list: sources}, wantErr: true},
		{name: "malformed id", dst: &liveEP{props: map[string]map[string]string{"backup/r": {TargetIDProperty: "XYZ"}}}, src: &liveEP{list: sources}, wantErr: true},
		{name: "source unlistable", dst: &liveEP{props: withID}, src: &liveEP{listErr: errors.New("connection reset")}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := zfs.ParseFilter([]string{"tank/a<", "!tank/a/skip"})
			if err != nil {
				t.Fatal(err)
			}
			j := &Job{Datasets: f, TargetRoot: "backup/r", Source: Static(tc.src), Target: Static(tc.dst),
				Map: func(s string) (string, error) { return TargetName("backup/r", s, 0) }}
			rels, err := j.LiveRelations(context.Background())
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var got []string
			for _, r := range rels {
				if r.ID != RelationID(rootTID, r.Target) {
					t.Errorf("%s: id %s, want RelationID(root, target) %s", r.Source, r.ID, RelationID(rootTID, r.Target))
				}
				got = append(got, r.Source+" -> "+r.Target)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if j.DryRun {
				t.Errorf("LiveRelations changed the job's DryRun")
			}
		})
	}
}
