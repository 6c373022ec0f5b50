package cmd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/state"
	zsync "github.com/zsync-dev/zsync/sync"
	"github.com/zsync-dev/zsync/zfs"
)

func TestErrorKind(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("job up: open target: %w", err) }
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{errors.New("something else"), ""},
		{wrap(sshtransport.ErrHostKeyUnknown), "ssh_host_key_unknown"},
		{wrap(sshtransport.ErrHostKeyMismatch), "ssh_host_key_mismatch"},
		{wrap(sshtransport.ErrAuth), "ssh_auth"},
		{wrap(sshtransport.ErrConnect), "ssh_connect"},
		{wrap(sshtransport.ErrNotZsync), "remote_not_zsync"},
		{wrap(&sshtransport.VersionMismatchError{Local: 1, Remote: 2, Peer: "9.9"}), "protocol_version"},
		{wrap(sshtransport.ErrForbidden), "forbidden"},
		{wrap(sshtransport.ErrProtocol), "protocol"},
		{wrap(&state.LockedError{Name: "up", Path: "/run/zsync/up.lock"}), "locked"},
		{usageErrorf("no push job in %s", "/etc/zsync/zsync.toml"), "config"},
		{wrap(context.Canceled), "interrupted"},
		{wrap(fmt.Errorf("plan: %w", zsync.ErrConflict)), "replication_conflict"},
		{wrap(zfs.ErrNoSpace), "zfs_no_space"},
		{wrap(zfs.ErrPermissionDenied), "zfs_permission_denied"},
		{wrap(sshtransport.ErrClosed), "ssh_connection_lost"},
		{wrap(&sshtransport.IdleTimeoutError{Timeout: time.Minute}), "far_side_idle"},
		// a sibling stream whose connection the idle timeout closed
		{wrap(fmt.Errorf("%w: %w", sshtransport.ErrConnect, &sshtransport.IdleTimeoutError{Timeout: time.Minute})), "far_side_idle"},
		// Several failures joined: the first class in errorKinds' order.
		{errors.Join(wrap(zfs.ErrNoSpace), wrap(sshtransport.ErrHostKeyMismatch)), "ssh_host_key_mismatch"},
		{&PartialError{Failed: 1, Succeeded: 2, Err: wrap(zfs.ErrBusy)}, "zfs_busy"},
	} {
		if got := errorKind(c.err); got != c.want {
			t.Errorf("errorKind(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestRunReportOfAFailedJob(t *testing.T) {
	ok := zsync.Result{Source: "tank/a", Target: "backup/a", Status: zsync.StatusReplicated, Bytes: 100}
	noSpace := zsync.Result{Source: "tank/b", Target: "backup/b", Status: zsync.StatusFailed, Err: fmt.Errorf("receive: %w", zfs.ErrNoSpace)}
	lost := fmt.Errorf("reconcile: %w", sshtransport.ErrClosed)
	auth := fmt.Errorf("open target: %w", &sshtransport.AuthError{User: "root", Addr: "host:22"})

	for _, c := range []struct {
		name         string
		datasets     []zsync.Result
		jobErr       error
		others       []error // zsync run's snap and prune
		result, kind string
		errorHas     []string
	}{
		{name: "all replicated", datasets: []zsync.Result{ok}, result: "ok"},
		{name: "no connection", jobErr: auth, result: "failed", kind: "ssh_auth", errorHas: []string{"open target", "root@host:22"}},
		{name: "a dataset failed", datasets: []zsync.Result{ok, noSpace},
			jobErr: &PartialError{Failed: 1, Succeeded: 1, Err: noSpace.Err},
			result: "partial", kind: "zfs_no_space", errorHas: []string{"tank/b: receive"}},
		{name: "the job failed after a dataset was replicated", datasets: []zsync.Result{ok}, jobErr: lost,
			result: "partial", kind: "ssh_connection_lost", errorHas: []string{"reconcile"}},
		{name: "the job and a dataset failed", datasets: []zsync.Result{noSpace}, jobErr: lost,
			result: "failed", kind: "ssh_connection_lost", errorHas: []string{"reconcile", "tank/b: receive"}},
		{name: "interrupted after a dataset was replicated", datasets: []zsync.Result{ok}, jobErr: fmt.Errorf("reconcile: %w", context.Canceled),
			result: "partial", kind: "interrupted", errorHas: []string{"reconcile"}},
		// the failure's kind, not the interruption's, tells monitoring what broke
		{name: "interrupted after a dataset failed", datasets: []zsync.Result{noSpace}, jobErr: fmt.Errorf("reconcile: %w", context.Canceled),
			result: "failed", kind: "zfs_no_space", errorHas: []string{"reconcile", "tank/b: receive"}},
		{name: "zsync run: the snapshot failed, replication interrupted", datasets: []zsync.Result{ok},
			jobErr: fmt.Errorf("open target: %w", context.Canceled), others: []error{fmt.Errorf("snap: %w", zfs.ErrNoSpace)},
			result: "partial", kind: "zfs_no_space", errorHas: []string{"snap: ", "open target"}},
		{name: "zsync run: replicated, but the snapshot failed", datasets: []zsync.Result{ok},
			others: []error{fmt.Errorf("snap: %w", zfs.ErrNoSpace)},
			result: "partial", kind: "zfs_no_space", errorHas: []string{"snap: "}},
		{name: "zsync run: a dataset and the prune failed", datasets: []zsync.Result{noSpace},
			jobErr: &PartialError{Failed: 1, Err: noSpace.Err}, others: []error{errors.New("prune: tank/b@x: dataset is busy")},
			result: "failed", kind: "zfs_no_space", errorHas: []string{"prune: ", "tank/b: receive"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rr := toRunReport("push", time.Now(), &zsync.Report{Job: "up", Datasets: c.datasets}, c.jobErr, c.others...)
			if rr.Result != c.result || rr.ErrorKind != c.kind {
				t.Errorf("result %q, error_kind %q; want %q, %q", rr.Result, rr.ErrorKind, c.result, c.kind)
			}
			for _, s := range c.errorHas {
				if !strings.Contains(rr.Error, s) {
					t.Errorf("error %q does not mention %q", rr.Error, s)
				}
			}
			if c.result == "ok" && rr.Error != "" {
				t.Errorf("an ok run has error %q", rr.Error)
			}
		})
	}
}
