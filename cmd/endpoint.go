package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	stdsync "sync"
	"time"

	"github.com/zsync-dev/zsync/sshtransport"
	zsync "github.com/zsync-dev/zsync/sync"
)

// selfExe is the zsync binary started as the local `serve --stdio` child.
// Tests that run commands in-process point it at a built zsync.
var selfExe = os.Executable

// farSide opens endpoints on the far side of a job: over SSH when the job has
// a [job.remote], otherwise a local `zsync serve --stdio` child, so that local
// and remote replication take one code path. One SSH connection carries
// every endpoint (each its own session/channel).
type farSide struct {
	e       *env
	remote  *remoteConfig
	copts   sshtransport.ClientOptions
	mu      stdsync.Mutex
	conn    *sshtransport.Conn
	clients []*sshtransport.Client
	// streams is max_streams within the session budget (see sshSessions)
	streams int
	// warnOnce keeps a failed max_streams to one warning per run
	warnOnce stdsync.Once
}

// sshSessions is OpenSSH's default MaxSessions: the sessions one
// connection may have open at a time. A job opens one per worker
// (concurrency), times max_streams; beyond it sshd refuses sessions, and a
// refused first session would fail datasets, so zsync stays within it.
const sshSessions = 10

// streamsWithin returns max_streams cut to the session budget.
func streamsWithin(maxStreams, concurrency int) int {
	return max(1, min(maxStreams, sshSessions/max(1, concurrency)))
}

// defaultIdleTimeout closes the far side's connection when a call has
// waited this long with nothing moving (a hung far zfs or serve), so a
// cron run cannot hang forever holding its lock. idle_timeout in
// [job.remote] overrides it; "0" disables it.
const defaultIdleTimeout = 30 * time.Minute

func (e *env) newFarSide(j *jobConfig) *farSide {
	f := &farSide{e: e, remote: j.Remote}
	if j.Remote != nil && j.Remote.MaxStreams > 1 {
		f.streams = streamsWithin(j.Remote.MaxStreams, j.Replication.Concurrency)
		if f.streams < j.Remote.MaxStreams {
			e.log.Warn().Str("job", j.Name).Msgf("max_streams = %d with concurrency = %d would open %d SSH sessions on one connection, more than sshd's default MaxSessions (%d): each stream uses %d channels (set max_streams = %d in [job.remote] to say so)",
				j.Remote.MaxStreams, j.Replication.Concurrency, j.Remote.MaxStreams*j.Replication.Concurrency, sshSessions, f.streams, f.streams)
		}
	}
	f.copts.IdleTimeout = defaultIdleTimeout
	if j.Remote != nil && j.Remote.IdleTimeout.IsSet() {
		f.copts.IdleTimeout = j.Remote.IdleTimeout.Duration
	}
	// one bucket for every stream of the job: bandwidth_limit is per job
	f.copts.Limiter = sshtransport.NewLimiter(j.Replication.BandwidthLimit.Bytes)
	if j.Replication.Compression == "zstd" {
		f.copts.Compression = "zstd"
	}
	return f
}

// open implements sync.Opener.
func (f *farSide) open(ctx context.Context) (zsync.Endpoint, error) {
	var cl *sshtransport.Client
	var err error
	if f.remote == nil {
		exe, xerr := selfExe()
		if xerr != nil {
			return nil, fmt.Errorf("find the zsync binary for the local serve child: %w", xerr)
		}
		cl, err = sshtransport.StartLocal(ctx, []string{exe, "serve", "--stdio"}, f.copts)
		if err != nil {
			return nil, fmt.Errorf("start local zsync serve: %w", err)
		}
	} else {
		conn, cerr := f.dial(ctx)
		if cerr != nil {
			return nil, cerr
		}
		rw, xerr := conn.Exec(ctx, f.remote.Command)
		if xerr != nil {
			return nil, fmt.Errorf("start %q on %s: %w", f.remote.Command, f.remote.Host, xerr)
		}
		cl, err = sshtransport.NewClient(ctx, rw, f.copts)
		if err != nil {
			rw.Close()
			return nil, fmt.Errorf("%s: %w", f.remote.Host, err)
		}
		if f.streams > 1 {
			if err := f.stripe(ctx, conn, cl, f.streams); err != nil {
				cl.Close()
				return nil, err
			}
		}
	}
	f.mu.Lock()
	f.clients = append(f.clients, cl)
	f.mu.Unlock()
	return cl, nil
}

// stripe spreads the streams of cl over n channels of conn (max_streams):
// one SSH channel carries about 2 MiB per round trip whatever the link. A
// far side that cannot stripe (an older zsync) costs a warning, not the
// run: the streams then go over cl's one channel. It returns an error only
// when cl broke meanwhile.
func (f *farSide) stripe(ctx context.Context, conn *sshtransport.Conn, cl *sshtransport.Client, n int) error {
	err := cl.Stripe(ctx, n, func(ctx context.Context) (io.ReadWriteCloser, error) {
		return conn.Exec(ctx, f.remote.Command)
	})
	switch {
	case err == nil:
		if got := cl.Streams(); got < n {
			f.warnOnce.Do(func() {
				f.e.log.Warn().Str("host", f.remote.Host).Msgf("max_streams = %d: the far host grants this client %d channels (raise max_streams in its [[serve.client]] there, or lower this job's)", n, got)
			})
		}
		f.e.log.Debug().Str("host", f.remote.Host).Int("streams", cl.Streams()).Msg("streams striped over several SSH channels")
	case errors.Is(err, sshtransport.ErrClosed):
		return fmt.Errorf("%s: the connection broke while striping over %d channels (max_streams; the next run tries again, max_streams = 1 does without): %w", f.remote.Host, n, err)
	case errors.Is(err, sshtransport.ErrStripingUnsupported):
		f.warnOnce.Do(func() {
			f.e.log.Warn().Str("host", f.remote.Host).Err(err).
				Msgf("max_streams = %d: the far zsync cannot stripe streams (upgrade it); each stream uses one SSH channel", n)
		})
	default:
		f.warnOnce.Do(func() {
			f.e.log.Warn().Str("host", f.remote.Host).Err(err).
				Msgf("max_streams = %d: striping failed; each stream uses one SSH channel", n)
		})
	}
	return nil
}

func (f *farSide) dial(ctx context.Context) (*sshtransport.Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		return f.conn, nil
	}
	r := f.remote
	policy, err := sshtransport.ParseHostKeyPolicy(r.HostKeyPolicy)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	var ids []string
	if r.IdentityFile != "" {
		ids = []string{r.IdentityFile}
	}
	log := f.e.log
	conn, err := sshtransport.Dial(ctx, sshtransport.DialOptions{
		Host: r.Host, User: r.User, Port: r.Port, IdentityFiles: ids,
		KnownHostsFile: r.KnownHosts, HostKeyPolicy: policy, ProxyJump: r.ProxyJump,
		ConnectTimeout: r.ConnectTimeout.Duration,
		Log: func(level, msg string, fields map[string]any) {
			ev := log.Info()
			switch strings.ToLower(level) {
			case "warn", "warning":
				ev = log.Warn()
			case "error":
				ev = log.Error()
			case "debug":
				ev = log.Debug()
			}
			ev.Fields(fields).Msg(msg)
		},
	})
	if err != nil {
		return nil, err
	}
	f.conn = conn
	return conn, nil
}

// close ends every client and the SSH connection.
func (f *farSide) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.clients {
		c.Close()
	}
	f.clients = nil
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}

// openTargetEndpoint opens one endpoint on the far side of a job: the target
// of a push job, the source of a pull job.
func (e *env) openTargetEndpoint(ctx context.Context, cfg *Config, j *jobConfig) (zsync.Endpoint, func(), error) {
	f := e.newFarSide(j)
	ep, err := f.open(ctx)
	if err != nil {
		f.close()
		return nil, nil, err
	}
	return ep, f.close, nil
}
