//go:build realzfs

package cmd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/sshtransport/wire"
	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// The far side is a jail: a client with a stolen key, speaking the
// protocol itself through the guest's sshd and the forced command, can do
// only what its [[serve.client]] entry allows.

// dialForced opens a session to the client's forced command.
func dialForced(t *testing.T, c *sshClient) io.ReadWriteCloser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := sshtransport.Dial(ctx, sshtransport.DialOptions{Host: "127.0.0.1", User: "root", Port: 22,
		IdentityFiles: []string{c.identity}, KnownHostsFile: c.knownHosts, ProxyJump: "none", SSHConfigFile: os.DevNull})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rwc, err := conn.Exec(context.Background(), "anything: the forced command runs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rwc.Close() })
	return rwc
}

// hostileClient is the product's client over the forced command: it sends
// what it is asked to, unchecked by any job logic.
func hostileClient(t *testing.T, c *sshClient) *sshtransport.Client {
	t.Helper()
	cl, err := sshtransport.NewClient(context.Background(), dialForced(t, c), sshtransport.ClientOptions{SoftwareVersion: "hostile"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// farState is everything that could change on the far side: every dataset,
// snapshot and bookmark with all its properties, and the mount table.
func farState(t *testing.T, pools ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range pools {
		b.WriteString(zfstest.Zfs(t, "list", "-H", "-p", "-r", "-t", "all", "-o", "name,guid,userrefs", p))
		for _, l := range strings.Split(zfstest.Zfs(t, "get", "-H", "-p", "-r", "-t", "all", "-o", "name,property,value,source", "all", p), "\n") {
			if f := strings.Split(l, "\t"); len(f) < 2 || !spaceAccounting[f[1]] {
				b.WriteString(l + "\n")
			}
		}
	}
	b.WriteString(mountsOf(t, pools...))
	return b.String()
}

// spaceAccounting are the properties that count space: a failed receive
// may leave frees pending, which moves them without changing any data.
var spaceAccounting = map[string]bool{
	"used": true, "available": true, "referenced": true, "usedbydataset": true, "usedbychildren": true,
	"usedbysnapshots": true, "usedbyrefreservation": true, "written": true, "logicalused": true,
	"logicalreferenced": true, "compressratio": true, "refcompressratio": true,
}

// mountsOf lists the mount table's entries of the pools' datasets.
func mountsOf(t *testing.T, pools ...string) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "zfs" {
			continue
		}
		for _, p := range pools {
			if f[0] == p || strings.HasPrefix(f[0], p+"/") {
				out = append(out, f[0]+" on "+f[1])
			}
		}
	}
	return strings.Join(out, "\n")
}

// A hostile client's receives and sets leave nothing mounted outside its
// receive root, also after `zfs mount -a`, and never take its choice of
// mountpoint, canmount or device properties.
func TestJailReceiveLandsInside(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 64)
	zfstest.MustCreate(t, src+"/evil", "mountpoint=/tmp/zsync-evil-p", "setuid=off", "sharenfs=off")
	zfstest.Zfs(t, "create", "-V", "4M", src+"/vol")
	zfstest.MustCreate(t, src+"/data2")
	zfstest.MustSnapshot(t, src+"/data@a", src+"/evil@x", src+"/vol@a", src+"/data2@x")
	zfstest.MustWriteFile(t, src+"/data", "g", 32)
	zfstest.MustSnapshot(t, src+"/data@b")
	zfstest.MustCreate(t, dst+"/laptop")
	root := zfstest.Mountpoint(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	cl := hostileClient(t, c)
	ctx := context.Background()
	full := zfstest.Send(t, src+"/data@a")

	refused := []struct {
		name string
		run  func() error
		want string
	}{
		{"receive -o mountpoint -o canmount=on without -u", func() error {
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/a", Set: map[string]string{"mountpoint": "/tmp/zsync-evil", "canmount": "on"}}, bytes.NewReader(full))
		}, "decided by the far side"},
		{"receive -o setuid=on exec=on devices=on", func() error {
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/a", Set: map[string]string{"setuid": "on", "exec": "on", "devices": "on"}}, bytes.NewReader(full))
		}, "allow_properties"},
		{"receive -o reservation", func() error {
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/a", Set: map[string]string{"reservation": "100M"}}, bytes.NewReader(full))
		}, "allow_properties"},
		{"receive a send -p stream", func() error {
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/p"}, bytes.NewReader(zfstest.Send(t, "-p", src+"/evil@x")))
		}, "stream with properties"},
		{"receive a compound stream nesting a property package", func() error {
			nested := append(append([]byte(nil), zfstest.Send(t, "-I", "@a", src+"/data@b")[:624]...), zfstest.Send(t, "-p", src+"/evil@x")...)
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/n"}, bytes.NewReader(nested))
		}, "nests"},
		{"receive garbage", func() error {
			return cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/g"}, strings.NewReader(strings.Repeat("garbage ", 100)))
		}, "not an acceptable zfs send stream"},
		{"create -o mountpoint", func() error {
			return cl.Create(ctx, dst+"/laptop/c", map[string]string{"mountpoint": "/tmp/zsync-evil"}, false)
		}, "mountpoint is decided by the far side"},
		{"create -o sharenfs", func() error {
			return cl.Create(ctx, dst+"/laptop/c", map[string]string{"sharenfs": "on"}, false)
		}, "allow_properties"},
		{"create outside", func() error { return cl.Create(ctx, dst+"/other", nil, false) }, "outside receive_root"},
		{"set a newline value", func() error {
			return cl.Set(ctx, dst+"/laptop", map[string]string{"zsync:x": "a\nb"})
		}, "control character"},
	}
	for _, r := range refused {
		before := farState(t, src, dst)
		err := r.run()
		if err == nil || !strings.Contains(err.Error(), r.want) {
			t.Errorf("%s: %v; want a refusal saying %q", r.name, err, r.want)
		}
		if after := farState(t, src, dst); after != before {
			t.Errorf("%s changed the far side:\nbefore:\n%s\nafter:\n%s", r.name, before, after)
		}
	}

	// A compound stream that smuggles another dataset's substream after a
	// legitimate one: another dataset of the sender (received without the
	// target's options), or one whose name only starts like the header's
	// (zfs recv would name it beside the target: dst/laptop/s2). The
	// guard stops the stream before that substream.
	incr := zfstest.Send(t, "-I", "@a", src+"/data@b")
	for name, tail := range map[string][]byte{
		"another dataset":         zfstest.Send(t, src+"/evil@x"),
		"a dataset with a prefix": zfstest.Send(t, src+"/data2@x"),
	} {
		smuggle := append(append(append([]byte(nil), incr[:624]...), full...), tail...)
		err := cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/s"}, bytes.NewReader(smuggle))
		if err == nil || !strings.Contains(err.Error(), "a substream of") {
			t.Errorf("smuggling %s: %v; want the guard's refusal", name, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(zfstest.Zfs(t, "list", "-H", "-o", "name", "-r", "-t", "all", dst)), "\n") {
			if l != dst && l != dst+"/laptop" && l != dst+"/laptop/s" && !strings.HasPrefix(l, dst+"/laptop/s@") {
				t.Errorf("smuggling %s left %s", name, l)
			}
		}
		zfstest.Exec(t, "zfs", "destroy", "-r", dst+"/laptop/s")
	}

	// What it may do lands the far side's way: a filesystem without -u and
	// a volume, with only allowed properties.
	if err := cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/a", Resumable: true, Set: map[string]string{"compression": "lz4"}}, bytes.NewReader(full)); err != nil {
		t.Fatalf("a plain receive: %v", err)
	}
	if err := cl.Receive(ctx, zfs.RecvOptions{Target: dst + "/laptop/vol"}, bytes.NewReader(zfstest.Send(t, src+"/vol@a"))); err != nil {
		t.Fatalf("a volume receive: %v", err)
	}
	checkProp := func(ds, prop, want string) {
		if got := zfstest.Get(t, ds, prop); got != want {
			t.Errorf("%s %s = %q, want %q", ds, prop, got, want)
		}
	}
	checkProp(dst+"/laptop/a", "canmount", "noauto")
	checkProp(dst+"/laptop/a", "volmode", "none")
	checkProp(dst+"/laptop/a", "compression", "lz4")
	checkProp(dst+"/laptop/a", "mountpoint", root+"/a")
	checkProp(dst+"/laptop/vol", "volmode", "none")
	if _, err := os.Stat("/dev/zvol/" + dst + "/laptop/vol"); err == nil {
		t.Errorf("the received volume has a device node")
	}
	// its own received dataset: no mountpoint, no canmount=on
	for _, props := range []map[string]string{{"mountpoint": "/tmp/zsync-evil3"}, {"canmount": "on"}, {"setuid": "on"}} {
		before := farState(t, src, dst)
		if err := cl.Set(ctx, dst+"/laptop/a", props); !errors.Is(err, sshtransport.ErrForbidden) {
			t.Errorf("set %v on its own dataset: %v; want forbidden", props, err)
		}
		if after := farState(t, src, dst); after != before {
			t.Errorf("set %v changed the far side", props)
		}
	}
	zfstest.Zfs(t, "mount", "-a")
	for _, l := range strings.Split(mountsOf(t, dst), "\n") {
		if l == "" {
			continue
		}
		f := strings.SplitN(l, " on ", 2)
		if f[0] != dst && f[0] != dst+"/laptop" {
			t.Errorf("after zfs mount -a the client's %s is mounted (%s)", f[0], l)
		}
		if !strings.HasPrefix(f[1], zfstest.Mountpoint(t, dst)) {
			t.Errorf("mounted outside the pool's tree: %s", l)
		}
	}
	for _, p := range []string{"/tmp/zsync-evil", "/tmp/zsync-evil-p", "/tmp/zsync-evil3"} {
		if strings.Contains(mountsOf(t, dst), p) {
			t.Errorf("%s is mounted", p)
		}
	}
	out := zfstest.Zfs(t, "get", "-H", "-r", "-o", "name,property,source", "mountpoint,setuid,sharenfs,canmount", dst+"/laptop")
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasSuffix(l, "\treceived") {
			t.Errorf("a received property: %s", l)
		}
	}
}

// Two clients pulling the same datasets cannot touch each other's holds
// and cursors, nor the admin's holds.
func TestJailTwoClientsOwnership(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 64)
	zfstest.MustSnapshot(t, src+"/data@s1")
	zfstest.Zfs(t, "hold", "admin-keep", src+"/data@s1")
	t.Cleanup(func() { zfstest.Exec(t, "zfs", "release", "admin-keep", src+"/data@s1") })
	body := serveClient("alice", dst+"/alice", []string{src + "/data<"}, "") + serveClient("bob", dst+"/bob", []string{src + "/data<"}, "")
	alice := newSSHClient(t, "alice", body)
	bob := newSSHClient(t, "bob", body)
	cfg := writeConfig(t, replicationJob("a", "pull", src+"/data", dst+"/pa", alice.remote(""))+
		replicationJob("b", "pull", src+"/data", dst+"/pb", bob.remote("")))
	for _, j := range []string{"a", "b"} {
		if code, _, errOut := zsyncRun(t, "--config", cfg, "pull", j); code != 0 {
			t.Fatalf("pull %s: exit %d\n%s", j, code, tail(errOut, 20))
		}
	}
	var aliceCursor, bobCursor string
	for _, b := range bookmarksOf(t, src+"/data") {
		switch {
		case strings.HasPrefix(b, "zsync_cursor_") && strings.HasSuffix(b, "_Calice"):
			aliceCursor = b
		case strings.HasPrefix(b, "zsync_cursor_") && strings.HasSuffix(b, "_Cbob"):
			bobCursor = b
		}
	}
	if aliceCursor == "" || bobCursor == "" {
		t.Fatalf("on disk, each client's cursor carries its name: %v", bookmarksOf(t, src+"/data"))
	}
	aliceView := strings.TrimSuffix(aliceCursor, "_Calice")
	ctx := context.Background()
	cl := hostileClient(t, bob)
	// bob sees his own cursor without the suffix and not alice's
	entries, err := cl.List(ctx, []string{src + "/data"}, zfs.ListOptions{Depth: 1, Types: []zfs.Type{zfs.Bookmark}})
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	for _, e := range entries {
		seen = append(seen, e.Name)
	}
	if want := []string{src + "/data#" + strings.TrimSuffix(bobCursor, "_Cbob")}; !equalStrings(seen, want) {
		t.Errorf("bob sees bookmarks %v, want %v", seen, want)
	}
	before := farState(t, src)
	// Hold under alice's tag name as bob: lands under bob's name.
	aliceTag := "zsync_step_T" + strings.TrimPrefix(strings.SplitN(aliceView, "_G", 2)[0], "zsync_cursor_T")
	ac := hostileClient(t, alice)
	if err := ac.Hold(ctx, aliceTag, []string{src + "/data@s1"}); err != nil {
		t.Fatalf("alice holds: %v", err)
	}
	t.Cleanup(func() { zfstest.Exec(t, "zfs", "release", aliceTag+"_Calice", src+"/data@s1") })
	before = farState(t, src)
	// Names bob must not use are refused; alice's names as bob sees them
	// are only bob's own (absent) names: nothing happens to alice's.
	refused, noop := wire.ErrForbidden, error(nil)
	for _, c := range []struct {
		name string
		want error
		run  func() error
	}{
		{"release alice's tag by its view name", noop, func() error { return cl.Release(ctx, aliceTag, []string{src + "/data@s1"}) }},
		{"release alice's on-disk tag", refused, func() error { return cl.Release(ctx, aliceTag+"_Calice", []string{src + "/data@s1"}) }},
		{"release the admin's hold", refused, func() error { return cl.Release(ctx, "admin-keep", []string{src + "/data@s1"}) }},
		{"destroy alice's cursor by its view name", noop, func() error { return cl.DestroyBookmarks(ctx, []string{src + "/data#" + aliceView}) }},
		{"destroy alice's on-disk cursor", refused, func() error { return cl.DestroyBookmarks(ctx, []string{src + "/data#" + aliceCursor}) }},
		{"destroy a user bookmark", refused, func() error { return cl.DestroyBookmarks(ctx, []string{src + "/data#mine"}) }},
		{"send from alice's cursor", refused, func() error {
			_, err := cl.SendSize(ctx, mustValidate(t, src+"/data#"+aliceCursor, src+"/data@s1"))
			return err
		}},
		{"destroy snapshots (no prune_send)", refused, func() error { return cl.DestroySnapshots(ctx, src+"/data", []string{"s1"}) }},
		{"hold with a foreign tag shape", refused, func() error { return cl.Hold(ctx, "keep-forever", []string{src + "/data@s1"}) }},
	} {
		err := c.run()
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("bob's %q: %v; want a refusal", c.name, err)
		}
		if after := farState(t, src); after != before {
			t.Errorf("bob's %q changed the far side:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
	holds := holdsOn(t, src+"/data")
	if !strings.Contains(strings.Join(holds, " "), "admin-keep") || !strings.Contains(strings.Join(holds, " "), aliceTag+"_Calice") {
		t.Errorf("holds after bob's attempts: %v", holds)
	}
	// alice's relationship still works incrementally
	zfstest.MustWriteFile(t, src+"/data", "g", 32)
	zfstest.MustSnapshot(t, src+"/data@s2")
	if code, _, errOut := zsyncRun(t, "--config", cfg, "pull", "a"); code != 0 {
		t.Fatalf("alice's next pull: exit %d\n%s", code, tail(errOut, 20))
	}
	if got := snapshotsOf(t, dst+"/pa/"+src+"/data"); !equalStrings(got, []string{"s1", "s2"}) {
		t.Errorf("alice's replica: %v", got)
	}
}

func mustValidate(t *testing.T, from, to string) zfs.ValidatedSend {
	t.Helper()
	vs, err := zfs.SendOptions{From: from, To: to}.Validate()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// rawSession speaks the protocol byte by byte, below the client's own
// checks.
type rawSession struct {
	rwc io.ReadWriteCloser
	br  *bufio.Reader
}

func newRawSession(t *testing.T, c *sshClient) *rawSession {
	t.Helper()
	rwc := dialForced(t, c)
	s := &rawSession{rwc: rwc, br: bufio.NewReader(rwc)}
	line, err := s.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ZSYNC-SERVE ") {
		t.Fatalf("banner %q: %v", line, err)
	}
	if _, err := fmt.Fprintf(rwc, "ZSYNC-CLIENT %d hostile\n", wire.ProtocolVersion); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *rawSession) request(t *testing.T, op string, args string) (wire.Response, error) {
	t.Helper()
	p, _ := json.Marshal(wire.Request{Op: op, Args: json.RawMessage(args)})
	if err := wire.WriteFrame(s.rwc, wire.FrameRequest, p); err != nil {
		return wire.Response{}, err
	}
	return s.read()
}

func (s *rawSession) read() (wire.Response, error) {
	ft, payload, err := wire.ReadFrame(s.br, nil)
	if err != nil {
		return wire.Response{}, err
	}
	var r wire.Response
	if ft != wire.FrameResponse && ft != wire.FrameError {
		return r, fmt.Errorf("a %s frame", ft)
	}
	if ft == wire.FrameError {
		var we wire.Error
		if err := json.Unmarshal(payload, &we); err == nil {
			r.Error = &we
		}
		return r, nil
	}
	return r, wire.DecodeStrict(payload, &r)
}

// ended reports whether the far side closed the session within d.
func (s *rawSession) ended(d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, s.br)
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(d):
		s.rwc.Close()
		return false
	}
}

// Every request type with hostile arguments, and broken frames: each is
// refused with an error, the far side is unchanged, and a broken session
// ends.
func TestJailHostileRequests(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustSnapshot(t, src+"/data@s1")
	zfstest.MustCreate(t, dst+"/laptop")
	zfstest.MustCreate(t, dst+"/laptop/r")
	zfstest.MustSnapshot(t, dst+"/laptop/r@s1")
	zfstest.MustCreate(t, dst+"/other")
	zfstest.MustSnapshot(t, dst+"/other@s1")
	c := newSSHClient(t, "laptop", serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	long := strings.Repeat("x", 300)
	L, S := dst+"/laptop/r", src+"/data"
	table := []struct{ op, args string }{
		{wire.OpList, `{"roots":["-r"],"options":{}}`},
		{wire.OpList, `{"roots":[],"options":{}}`},
		{wire.OpList, `{"roots":["` + dst + `/other"],"options":{}}`},
		{wire.OpList, `{"roots":["` + L + `/../../other"],"options":{}}`},
		{wire.OpGet, `{"names":["` + L + `\n` + dst + `/other"],"props":["all"]}`},
		{wire.OpGet, `{"names":["` + dst + `/other@s1"],"props":["guid"]}`},
		{wire.OpHolds, `{"snaps":["` + L + `#b"]}`},
		{wire.OpHold, `{"tag":"zsync_step_T0123456789abcdef","snaps":["` + dst + `/other@s1"]}`},
		{wire.OpHold, `{"tag":"-r","snaps":["` + S + `@s1"]}`},
		{wire.OpRelease, `{"tag":"zsync_step_T0123456789abcdef_Cdesk","snaps":["` + S + `@s1"]}`},
		{wire.OpBookmark, `{"source":"` + S + `@s1","bookmark":"` + S + `#mine"}`},
		{wire.OpBookmark, `{"source":"` + dst + `/other@s1","bookmark":"` + L + `#zsync_cursor_T0123456789abcdef_G0000000000000001"}`},
		{wire.OpDestroySnapshots, `{"dataset":"` + dst + `/other","names":["s1"]}`},
		{wire.OpDestroySnapshots, `{"dataset":"` + L + `","names":["s1%s9"]}`},
		{wire.OpDestroySnapshots, `{"dataset":"` + L + `","names":["s1,s2"]}`},
		{wire.OpDestroySnapshots, `{"dataset":"` + S + `","names":["s1"]}`},
		{wire.OpDestroyBookmarks, `{"bookmarks":["` + dst + `/other#b"]}`},
		{wire.OpCreate, `{"name":"` + L + `/a b/c"}`},
		{wire.OpCreate, `{"name":"` + L + `/` + long + `"}`},
		{wire.OpCreate, `{"name":"` + L + `/x","props":{"mountpoint":"/etc/cron.d"}}`},
		{wire.OpCreate, `{"name":"` + L + `/x\u0000y"}`},
		{wire.OpSet, `{"name":"` + L + `","props":{"mountpoint":"/tmp/evil"}}`},
		{wire.OpSet, `{"name":"` + L + `","props":{"zsync:x":"a\nb"}}`},
		{wire.OpSet, `{"name":"` + dst + `/other","props":{"zsync:x":"1"}}`},
		{wire.OpRename, `{"from":"` + L + `","to":"` + dst + `/stolen"}`},
		{wire.OpRename, `{"from":"` + dst + `/other","to":"` + L + `/other"}`},
		{wire.OpSend, `{"options":{"to":"` + dst + `/other@s1"}}`},
		{wire.OpSend, `{"options":{"to":"` + S + `@s1","from":"` + dst + `/other@s1"}}`},
		{wire.OpSendSize, `{"options":{"ResumeToken":"1-deadbeef-0-789c"}}`},
		{wire.OpReceive, `{"options":{"target":"` + dst + `/other/x"}}`},
		{wire.OpReceive, `{"options":{"target":"` + L + `/x","set":{"origin":"` + dst + `/other@s1"}}}`},
		{wire.OpReceive, `{"options":{"target":"` + L + `@s9"},"compress":"gzip"}`},
		{wire.OpAbortReceive, `{"dataset":"` + dst + `/other"}`},
		{wire.OpDecodeResumeToken, `{"token":"-nv"}`},
		{"exec", `{"argv":["rm","-rf","/"]}`},
	}
	before := farState(t, src, dst)
	s := newRawSession(t, c)
	for _, r := range table {
		resp, err := s.request(t, r.op, r.args)
		if err != nil {
			t.Fatalf("%s %s: the session broke: %v", r.op, r.args, err)
		}
		if resp.Error == nil {
			t.Errorf("%s %s: accepted", r.op, r.args)
		}
	}
	if after := farState(t, src, dst); after != before {
		t.Fatalf("the far side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Broken framing: each ends its session (with an error frame or not)
	// and changes nothing.
	frame := func(t wire.FrameType, n uint32, payload []byte) []byte {
		b := make([]byte, 5, 5+len(payload))
		b[0] = byte(t)
		binary.BigEndian.PutUint32(b[1:], n)
		return append(b, payload...)
	}
	head := zfstest.Send(t, src+"/data@s1")
	for name, bytes := range map[string][]byte{
		"oversized control frame":  frame(wire.FrameRequest, 1<<30, nil),
		"unknown frame type":       frame('W', 2, []byte("{}")),
		"data outside a stream":    frame(wire.FrameData, 3, []byte("abc")),
		"truncated frame then EOF": frame(wire.FrameRequest, 100, []byte(`{"op":"list"`)),
		"not JSON":                 frame(wire.FrameRequest, 5, []byte("hello")),
		"unknown JSON field":       frame(wire.FrameRequest, 32, []byte(`{"op":"list","args":{},"sudo":1}`)),
		"a request inside a receive stream": append(append(frame(wire.FrameRequest, uint32(len(`{"op":"receive","args":{"options":{"target":"`+L+`/n"}}}`)), []byte(`{"op":"receive","args":{"options":{"target":"`+L+`/n"}}}`)),
			frame(wire.FrameData, uint32(len(head[:400])), head[:400])...),
			frame(wire.FrameRequest, 2, []byte("{}"))...),
		"EOF mid-stream": append(frame(wire.FrameRequest, uint32(len(`{"op":"receive","args":{"options":{"target":"`+L+`/m"}}}`)), []byte(`{"op":"receive","args":{"options":{"target":"`+L+`/m"}}}`)),
			frame(wire.FrameData, uint32(len(head[:400])), head[:400])...),
	} {
		s := newRawSession(t, c)
		if _, err := s.rwc.Write(bytes); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cw, ok := s.rwc.(interface{ CloseWrite() error }); ok && strings.Contains(name, "EOF") {
			_ = cw.CloseWrite()
		}
		if !s.ended(60 * time.Second) {
			t.Errorf("%s: the far side did not end the session within 60 s", name)
		}
		if after := farState(t, src, dst); after != before {
			t.Errorf("%s changed the far side:\nbefore:\n%s\nafter:\n%s", name, before, after)
		}
	}
}

// A silent client ends its session within serve's idle_timeout: one that
// never says hello, one quiet between requests, one that stalls in the
// middle of a receive stream. Nothing changes on the far side.
func TestJailServeTimeouts(t *testing.T) {
	src, dst := zfstest.NewPool(t, 128), zfstest.NewPool(t, 128)
	zfstest.MustCreate(t, src+"/data")
	zfstest.MustWriteFile(t, src+"/data", "f", 256)
	zfstest.MustSnapshot(t, src+"/data@s1")
	zfstest.MustCreate(t, dst+"/laptop")
	c := newSSHClient(t, "laptop", "[serve]\nidle_timeout = \"3s\"\n"+serveClient("laptop", dst+"/laptop", []string{src + "/data<"}, ""))
	stream := zfstest.Send(t, src+"/data@s1")
	before := farState(t, src, dst)
	for name, talk := range map[string]func(s *rawSession){
		"no hello": nil,
		"quiet after hello": func(s *rawSession) {
			fmt.Fprintf(s.rwc, "ZSYNC-CLIENT %d hostile\n", wire.ProtocolVersion)
		},
		"stalled receive": func(s *rawSession) {
			fmt.Fprintf(s.rwc, "ZSYNC-CLIENT %d hostile\n", wire.ProtocolVersion)
			p := []byte(`{"op":"receive","args":{"options":{"Target":"` + dst + `/laptop/x"}}}`)
			if err := wire.WriteFrame(s.rwc, wire.FrameRequest, p); err != nil {
				t.Fatal(err)
			}
			if err := wire.WriteFrame(s.rwc, wire.FrameData, stream[:len(stream)/2]); err != nil {
				t.Fatal(err)
			}
		},
	} {
		rwc := dialForced(t, c)
		s := &rawSession{rwc: rwc, br: bufio.NewReader(rwc)}
		if line, err := s.br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "ZSYNC-SERVE ") {
			t.Fatalf("%s: banner %q: %v", name, line, err)
		}
		start := time.Now()
		if talk != nil {
			talk(s)
		}
		if !s.ended(60 * time.Second) {
			t.Errorf("%s: the session did not end within 60 s", name)
		} else if d := time.Since(start); d > 30*time.Second {
			t.Errorf("%s: the session ended after %s, want about 3 s", name, d)
		} else {
			t.Logf("%s: the session ended after %s", name, d.Round(100*time.Millisecond))
		}
		if after := farState(t, src, dst); after != before {
			t.Errorf("%s changed the far side:\nbefore:\n%s\nafter:\n%s", name, before, after)
		}
	}
}
