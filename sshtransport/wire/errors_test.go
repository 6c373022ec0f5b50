package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
)

// snapNames returns n short snapshot names of about 100 bytes.
func snapNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%05d_%s", i, strings.Repeat("x", 94))
	}
	return out
}

// Past its budget the far side omits names and says so; the client then
// names every snapshot of its request that the answer does not list.
func TestDestroyBatchPastBudget(t *testing.T) {
	names := snapNames(70000) // 7 MB of names alone
	failed := map[string]error{}
	for _, n := range names {
		failed[n] = fmt.Errorf("@%s: %w", n, zfs.ErrSnapshotHeld)
	}
	w := EncodeError(&zfs.DestroyError{Dataset: "tank/data", Failed: failed})
	b := w.Destroy
	if b.Complete || b.Omitted == 0 || len(b.Failed)+b.Omitted != len(names) {
		t.Fatalf("Complete %v, %d listed, %d omitted; want an incomplete batch accounting for all %d", b.Complete, len(b.Failed), b.Omitted, len(names))
	}
	p, err := json.Marshal(Response{Error: w})
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > maxWireBatch+maxWireMessage+4<<10 || len(p) > MaxControlPayload {
		t.Errorf("encoded response of %d bytes", len(p))
	}
	var back Response
	if err := json.Unmarshal(p, &back); err != nil {
		t.Fatal(err)
	}
	got := back.Error.Decode()
	CompleteBatch(got, append([]string{"maybe destroyed"}, names...))
	var de *zfs.DestroyError
	if !errors.As(got, &de) || len(de.Failed) != len(names)+1 {
		t.Fatalf("after completion %d names failed, want %d", len(de.Failed), len(names)+1)
	}
	unreported := 0
	for n, f := range de.Failed {
		switch {
		case errors.Is(f, ErrUnreported):
			unreported++
		case !errors.Is(f, zfs.ErrSnapshotHeld):
			t.Fatalf("Failed[%s] = %v", n, f)
		}
	}
	if unreported != b.Omitted+1 {
		t.Errorf("%d unreported, want the %d omitted and the one not listed", unreported, b.Omitted)
	}
}

// An older server listed at most 1000 failures without saying so: a batch
// of 1000 or more without "complete" names every snapshot of the request it
// does not list; a shorter one, or a complete one, is exact.
func TestDestroyBatchFromOlderServer(t *testing.T) {
	names := snapNames(1200)
	batch := func(listed int, complete bool) *Error {
		b := &wireBatch{Dataset: "tank/data", Failed: map[string]wireLeaf{}, Complete: complete}
		for _, n := range names[:listed] {
			b.Failed[n] = wireLeaf{Kinds: []string{"snapshot_held"}, Message: "held"}
		}
		return &Error{wireLeaf: wireLeaf{Message: "cannot destroy"}, Destroy: b}
	}
	tests := []struct {
		name       string
		w          *Error
		wantFailed int
	}{
		{"capped legacy list", batch(legacyWireFailed, false), len(names)},
		{"short legacy list", batch(3, false), 3},
		{"complete list", batch(legacyWireFailed, true), legacyWireFailed},
	}
	for _, tt := range tests {
		// through JSON, as it crosses
		p, err := json.Marshal(tt.w)
		if err != nil {
			t.Fatal(err)
		}
		var w Error
		if err := json.Unmarshal(p, &w); err != nil {
			t.Fatal(err)
		}
		got := w.Decode()
		CompleteBatch(got, names)
		var de *zfs.DestroyError
		if !errors.As(got, &de) || len(de.Failed) != tt.wantFailed {
			t.Errorf("%s: %d failed, want %d", tt.name, len(de.Failed), tt.wantFailed)
		}
	}
}
