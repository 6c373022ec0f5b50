package zfs_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zsync-dev/zsync/zfs"
	"github.com/zsync-dev/zsync/zfs/zfstest"
)

// stderrCase is one failing zfs invocation whose stderr the zfs package
// classifies: how to provoke it on a real pool (setup), the verb call that
// fails (through the package, so the real classification path runs) and the
// sentinel the error must wrap. The same table drives the real-ZFS recorder
// (realzfs_stderr_test.go) and the fixture replay (stderr_replay_test.go):
// the recorded stderr of case NAME on OpenZFS X.Y is
// testdata/stderr/X.Y/NAME.txt, with the pool name replaced by POOL.
type stderrCase struct {
	name string
	// setup prepares the pool (real ZFS only); nil: nothing to prepare.
	setup func(t *testing.T, pool string) caseEnv
	// call runs the failing verb on pool. Its names are built from pool,
	// which is the random test pool on real ZFS and "POOL" in replays.
	call func(ctx context.Context, c *zfs.CLI, pool string, env caseEnv) error
	want error
	// unnamed: the message names no object the caller asked about (a
	// stream error, a name read from a resume token), so it is not
	// checked against the names.
	unnamed bool
}

// caseEnv is what a setup hands to its call. In replays it is replayEnv.
type caseEnv struct {
	stream []byte // a send stream for receive cases
	token  string // a resume token for send -t cases
	asUser bool   // run zfs as an unprivileged user (real ZFS)
}

// replayEnv stands in for the setup's results when a fixture is replayed:
// the verb fails before the stream or token matters.
var replayEnv = caseEnv{stream: []byte("x"), token: "1-ab-12-cd"}

// placeholderPool replaces the random pool name in recorded fixtures.
const placeholderPool = "POOL"

var (
	reFixtureToken = regexp.MustCompile(`\b1-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+\b`)
	reFixtureGUID  = regexp.MustCompile(`\b0x[0-9a-f]{4,}\b`)
)

// normalizeStderr makes a recorded stderr independent of the run: the pool
// name becomes POOL, resume tokens TOKEN and hex guids 0xGUID.
func normalizeStderr(stderr, pool string) string {
	s := strings.ReplaceAll(stderr, pool, placeholderPool)
	s = reFixtureToken.ReplaceAllString(s, "TOKEN")
	return reFixtureGUID.ReplaceAllString(s, "0xGUID")
}

func sendOpts(o zfs.SendOptions) zfs.ValidatedSend {
	v, err := o.Validate()
	if err != nil {
		// only reachable with a bad table entry
		panic(err)
	}
	return v
}

// fsWithSnaps creates POOL/fs with a file and the snapshots, in order, each
// after writing more data.
func fsWithSnaps(t *testing.T, pool string, snaps ...string) string {
	t.Helper()
	fs := pool + "/fs"
	zfstest.MustCreate(t, fs)
	for i, s := range snaps {
		zfstest.MustWriteFile(t, fs, "f"+s, 256+64*i)
		zfstest.MustSnapshot(t, fs+"@"+s)
	}
	return fs
}

// recvStream runs `zfs recv ARGS` with stream as input and returns its
// stderr and error (the caller decides whether a failure is expected).
func recvStream(t *testing.T, stream []byte, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("zfs", append([]string{"recv"}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdin = bytes.NewReader(stream)
	var e bytes.Buffer
	cmd.Stderr = &e
	err := cmd.Run()
	t.Logf("$ zfs recv %s < %d bytes: %v", strings.Join(args, " "), len(stream), err)
	return e.String(), err
}

func mustRecv(t *testing.T, stream []byte, args ...string) {
	t.Helper()
	if stderr, err := recvStream(t, stream, args...); err != nil {
		t.Fatalf("zfs recv %v: %v: %s", args, err, stderr)
	}
}

// partialToken interrupts a resumable receive of stream into target and
// returns the target's receive_resume_token.
func partialToken(t *testing.T, stream []byte, target string) string {
	t.Helper()
	if _, err := recvStream(t, stream[:len(stream)/2], "-s", target); err == nil {
		t.Fatalf("receive of half a stream into %s succeeded", target)
	}
	tok := zfstest.Get(t, target, "receive_resume_token")
	if tok == "" || tok == "-" {
		t.Fatalf("no resume token on %s", target)
	}
	return tok
}

// corruptToken changes one hex digit of a token's compressed payload, so
// it stays well formed but no longer decodes.
func corruptToken(tok string) string {
	i := strings.LastIndexByte(tok, '-') + 10
	b := []byte(tok)
	if b[i] == '0' {
		b[i] = '1'
	} else {
		b[i] = '0'
	}
	return string(b)
}

// recvCall receives env.stream into target.
func recvCall(target string, force bool) func(ctx context.Context, c *zfs.CLI, pool string, env caseEnv) error {
	return func(ctx context.Context, c *zfs.CLI, pool string, env caseEnv) error {
		return c.Receive(ctx, zfs.RecvOptions{Target: pool + target, Force: force}, bytes.NewReader(env.stream))
	}
}

func sendSizeToken(ctx context.Context, c *zfs.CLI, pool string, env caseEnv) error {
	_, err := c.SendSize(ctx, sendOpts(zfs.SendOptions{ResumeToken: env.token}))
	return err
}

// stderrCases: one per typed error and verb path that classifies stderr.
var stderrCases = []stderrCase{
	{name: "get_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			_, err := c.Get(ctx, []string{pool + "/nope"}, []string{"guid"})
			return err
		}},
	{name: "set_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Set(ctx, pool+"/nope", map[string]string{"zsync:a": "1"})
		}},
	{name: "inherit_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Inherit(ctx, pool+"/nope", "zsync:a")
		}},
	{name: "list_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			_, err := c.List(ctx, []string{pool + "/nope"}, zfs.ListOptions{})
			return err
		}},
	{name: "create_exists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv { zfstest.MustCreate(t, pool+"/fs"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Create(ctx, pool+"/fs", nil, false)
		}},
	{name: "create_noparent", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Create(ctx, pool+"/x/y", nil, false)
		}},
	{name: "create_nospace", want: zfs.ErrNoSpace,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Create(ctx, pool+"/big", map[string]string{"refreservation": "1G"}, false)
		}},
	{name: "create_permission", want: zfs.ErrPermissionDenied,
		setup: func(t *testing.T, pool string) caseEnv { return caseEnv{asUser: true} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Create(ctx, pool+"/fs", nil, false)
		}},
	{name: "snapshot_exists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Snapshot(ctx, []string{pool + "/fs@s1"}, nil)
		}},
	{name: "snapshot_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Snapshot(ctx, []string{pool + "/nope@s1"}, nil)
		}},
	{name: "snapshot_permission", want: zfs.ErrPermissionDenied,
		setup: func(t *testing.T, pool string) caseEnv {
			zfstest.MustCreate(t, pool+"/fs")
			return caseEnv{asUser: true}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Snapshot(ctx, []string{pool + "/fs@s1"}, nil)
		}},
	{name: "bookmark_exists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			zfstest.Zfs(t, "bookmark", fs+"@s1", fs+"#b")
			return caseEnv{}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Bookmark(ctx, pool+"/fs@s1", pool+"/fs#b")
		}},
	{name: "bookmark_nosource", want: zfs.ErrDatasetNotFound,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Bookmark(ctx, pool+"/fs@gone", pool+"/fs#b")
		}},
	{name: "rename_exists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv {
			zfstest.MustCreate(t, pool+"/a")
			zfstest.MustCreate(t, pool+"/b")
			return caseEnv{}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Rename(ctx, pool+"/a", pool+"/b")
		}},
	{name: "rename_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Rename(ctx, pool+"/nope", pool+"/other")
		}},
	{name: "rollback_notlatest", want: zfs.ErrNotMostRecent,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1", "s2"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Rollback(ctx, pool+"/fs@s1")
		}},
	{name: "rollback_notfound", want: zfs.ErrDatasetNotFound,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Rollback(ctx, pool+"/fs@gone")
		}},
	{name: "hold_exists", want: zfs.ErrHoldExists,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			zfstest.Zfs(t, "hold", "keep", fs+"@s1")
			return caseEnv{}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Hold(ctx, "keep", []string{pool + "/fs@s1"})
		}},
	{name: "hold_nosnapshot", want: zfs.ErrDatasetNotFound,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Hold(ctx, "keep", []string{pool + "/fs@gone"})
		}},
	{name: "hold_nodataset", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Hold(ctx, "keep", []string{pool + "/nope@s1"})
		}},
	{name: "release_nosuch", want: zfs.ErrNoSuchHold,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.Release(ctx, "keep", []string{pool + "/fs@s1"})
		}},
	{name: "holds_notfound", want: zfs.ErrDatasetNotFound,
		setup: func(t *testing.T, pool string) caseEnv { fsWithSnaps(t, pool, "s1"); return caseEnv{} },
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			_, err := c.Holds(ctx, []string{pool + "/fs@gone"})
			return err
		}},
	{name: "destroy_held", want: zfs.ErrSnapshotHeld,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "a", "b", "c")
			zfstest.Zfs(t, "hold", "pin", fs+"@b")
			return caseEnv{}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.DestroySnapshots(ctx, pool+"/fs", []string{"a", "b", "c"})
		}},
	{name: "destroy_cloned", want: zfs.ErrSnapshotCloned,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "a", "b")
			zfstest.Zfs(t, "clone", fs+"@b", pool+"/clone")
			return caseEnv{}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.DestroySnapshots(ctx, pool+"/fs", []string{"a", "b"})
		}},
	{name: "destroy_nodataset", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.DestroySnapshots(ctx, pool+"/nope", []string{"a"})
		}},
	{name: "recv_exists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			zfstest.MustCreate(t, pool+"/dst")
			return caseEnv{stream: zfstest.Send(t, fs+"@s1")}
		},
		call: recvCall("/dst", false)},
	{name: "recv_hassnaps", want: zfs.ErrDestinationHasSnapshots,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			zfstest.MustCreate(t, pool+"/dst")
			zfstest.MustSnapshot(t, pool+"/dst@old")
			return caseEnv{stream: zfstest.Send(t, fs+"@s1")}
		},
		call: recvCall("/dst", true)},
	{name: "recv_modified", want: zfs.ErrDestinationModified,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2")
			mustRecv(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			zfstest.MustWriteFile(t, pool+"/dst", "changed", 16)
			return caseEnv{stream: zfstest.Send(t, "-i", fs+"@s1", fs+"@s2")}
		},
		call: recvCall("/dst", false)},
	{name: "recv_mismatch", want: zfs.ErrIncrementalMismatch,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2", "s3")
			mustRecv(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			return caseEnv{stream: zfstest.Send(t, "-i", fs+"@s2", fs+"@s3")}
		},
		call: recvCall("/dst", false)},
	{name: "recv_snapexists", want: zfs.ErrExists,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2")
			mustRecv(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			zfstest.MustSnapshot(t, pool+"/dst@s2")
			return caseEnv{stream: zfstest.Send(t, "-i", fs+"@s1", fs+"@s2")}
		},
		call: recvCall("/dst", false)},
	{name: "recv_notfound", want: zfs.ErrDatasetNotFound,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2")
			return caseEnv{stream: zfstest.Send(t, "-i", fs+"@s1", fs+"@s2")}
		},
		call: recvCall("/nope", false)},
	{name: "recv_partial", want: zfs.ErrPartialReceive,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2")
			mustRecv(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			inc := zfstest.Send(t, "-i", fs+"@s1", fs+"@s2")
			partialToken(t, inc, pool+"/dst")
			return caseEnv{stream: inc}
		},
		call: recvCall("/dst", false)},
	{name: "recv_truncated", unnamed: true, want: zfs.ErrStreamIncomplete,
		setup: func(t *testing.T, pool string) caseEnv {
			full := zfstest.Send(t, fsWithSnaps(t, pool, "s1")+"@s1")
			return caseEnv{stream: full[:len(full)/2]}
		},
		call: recvCall("/dst", false)},
	{name: "recv_badmagic", unnamed: true, want: zfs.ErrStreamIncomplete,
		setup: func(t *testing.T, pool string) caseEnv {
			return caseEnv{stream: bytes.Repeat([]byte("not a zfs stream\n"), 4096)}
		},
		call: recvCall("/dst", false)},
	{name: "recv_abort_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			return c.AbortReceive(ctx, pool+"/nope")
		}},
	{name: "send_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			s, err := c.Send(ctx, sendOpts(zfs.SendOptions{To: pool + "/nope@s1"}))
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, s)
			if cerr := s.Close(); err == nil {
				err = cerr
			}
			return err
		}},
	{name: "sendsize_notfound", want: zfs.ErrDatasetNotFound,
		call: func(ctx context.Context, c *zfs.CLI, pool string, _ caseEnv) error {
			_, err := c.SendSize(ctx, sendOpts(zfs.SendOptions{To: pool + "/nope@s1"}))
			return err
		}},
	{name: "send_token_stale", unnamed: true, want: zfs.ErrResumeTokenStale,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			tok := partialToken(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			zfstest.Zfs(t, "destroy", fs+"@s1")
			return caseEnv{token: tok}
		},
		call: sendSizeToken},
	{name: "send_token_replaced", unnamed: true, want: zfs.ErrResumeTokenStale,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			tok := partialToken(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			zfstest.Zfs(t, "destroy", fs+"@s1")
			zfstest.MustSnapshot(t, fs+"@s1")
			return caseEnv{token: tok}
		},
		call: sendSizeToken},
	{name: "send_token_nofrom", unnamed: true, want: zfs.ErrResumeTokenStale,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1", "s2")
			mustRecv(t, zfstest.Send(t, fs+"@s1"), pool+"/dst")
			tok := partialToken(t, zfstest.Send(t, "-i", fs+"@s1", fs+"@s2"), pool+"/dst")
			// dst@s1 has the guid of fs@s1: without dst, zfs finds no
			// snapshot of that guid in the pool.
			zfstest.Zfs(t, "recv", "-A", pool+"/dst")
			zfstest.Zfs(t, "destroy", "-r", pool+"/dst")
			zfstest.Zfs(t, "destroy", fs+"@s1")
			return caseEnv{token: tok}
		},
		call: sendSizeToken},
	{name: "send_token_corrupt", unnamed: true, want: zfs.ErrResumeTokenCorrupt,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			return caseEnv{token: corruptToken(partialToken(t, zfstest.Send(t, fs+"@s1"), pool+"/dst"))}
		},
		call: sendSizeToken},
	{name: "decode_token_corrupt", unnamed: true, want: zfs.ErrResumeTokenCorrupt,
		setup: func(t *testing.T, pool string) caseEnv {
			fs := fsWithSnaps(t, pool, "s1")
			return caseEnv{token: corruptToken(partialToken(t, zfstest.Send(t, fs+"@s1"), pool+"/dst"))}
		},
		call: func(ctx context.Context, c *zfs.CLI, pool string, env caseEnv) error {
			_, err := c.DecodeResumeToken(ctx, env.token)
			return err
		}},
}

// fixturePath is where the recorded stderr of a case on version ver lives.
func fixturePath(ver, name string) string {
	return filepath.Join("testdata", "stderr", ver, name+".txt")
}

// allSentinels lists every sentinel of the package.
var allSentinels = []error{
	zfs.ErrDatasetNotFound, zfs.ErrExists, zfs.ErrSnapshotHeld, zfs.ErrSnapshotCloned, zfs.ErrHoldExists, zfs.ErrNoSuchHold,
	zfs.ErrDestinationModified, zfs.ErrIncrementalMismatch, zfs.ErrDestinationHasSnapshots, zfs.ErrPartialReceive,
	zfs.ErrStreamIncomplete, zfs.ErrResumeTokenCorrupt, zfs.ErrResumeTokenStale, zfs.ErrNotMostRecent, zfs.ErrBusy,
	zfs.ErrPermissionDenied, zfs.ErrNoSpace,
}
