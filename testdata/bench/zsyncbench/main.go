// Command zsyncbench is the zsync end of `make bench` (testdata/bench/openssh):
// it moves one stream through zsync's protocol over an x/crypto/ssh session,
// push or pull, against a private sshd, with the zfs ends replaced by a file
// source and a discard sink, and prints "zsync MODE BYTES SECONDS SETUP_SECONDS".
//
//	zsyncbench serve sink|source FILE   the far end (the sshd runs it)
//	zsyncbench client -mode push|pull ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/zsync-dev/zsync/sshtransport"
	"github.com/zsync-dev/zsync/sshtransport/serve"
	"github.com/zsync-dev/zsync/zfs"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: zsyncbench serve sink|source FILE | client -mode push|pull ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "serve":
		benchServe(os.Args[2:])
	case "client":
		if prof := os.Getenv("ZSYNC_BENCH_CPUPROFILE"); prof != "" {
			f, err := os.Create(prof)
			if err == nil && pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
		if err := benchClient(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "zsyncbench:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "zsyncbench: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

// benchHandler is the far end: Receive discards with a 1 MiB buffer, Send
// streams a file. Other operations are never called by the benchmark.
type benchHandler struct {
	serve.Handler
	file string
}

func (h *benchHandler) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	if h.file == "" {
		return nil, errors.New("bench: no source file")
	}
	return os.Open(h.file)
}

func (h *benchHandler) Receive(ctx context.Context, o zfs.RecvOptions, stream io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		_, err := stream.Read(buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// benchServe runs Serve on stdin/stdout and exits the process.
func benchServe(args []string) {
	h := &benchHandler{}
	switch {
	case len(args) == 1 && args[0] == "sink":
	case len(args) == 2 && args[0] == "source":
		h.file = args[1]
	default:
		fmt.Fprintf(os.Stderr, "bench serve: want \"sink\" or \"source FILE\", got %q\n", args)
		os.Exit(2)
	}
	if err := serve.Serve(context.Background(), os.Stdin, os.Stdout, h, serve.Options{SoftwareVersion: "bench"}); err != nil {
		fmt.Fprintln(os.Stderr, "bench serve:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// benchClient moves one stream and prints its timing. The time covers
// everything `ssh host cmd` does too: connection, authentication, the
// remote command's start, the transfer and the remote command's exit.
func benchClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	mode := fs.String("mode", "", "push or pull")
	port := fs.Int("port", 0, "sshd port on 127.0.0.1")
	key := fs.String("key", "", "identity file")
	knownHosts := fs.String("known-hosts", "", "known_hosts file with the sshd's key")
	sshConfig := fs.String("ssh-config", "", "ssh_config file (empty)")
	remote := fs.String("remote", "", "path of this program for the remote command")
	file := fs.String("file", "", "source file (pushed from here, or pulled from the far side)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := os.Stat(*file)
	if err != nil {
		return err
	}
	want := st.Size()
	helper := []string{"serve"}
	switch *mode {
	case "push":
		helper = append(helper, "sink")
	case "pull":
		helper = append(helper, "source", *file)
	default:
		return fmt.Errorf("-mode must be push or pull, not %q", *mode)
	}

	// The same processor setting as a zsync push or pull job with
	// concurrency 1.
	defer sshtransport.SetStreamProcs(1)()

	ctx := context.Background()
	start := time.Now()
	conn, err := sshtransport.Dial(ctx, sshtransport.DialOptions{
		Host: "127.0.0.1", Port: *port, IdentityFiles: []string{*key},
		KnownHostsFile: *knownHosts, SSHConfigFile: *sshConfig, KeepAlive: -1,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	rw, err := conn.Exec(ctx, sshtransport.RemoteCommand(*remote, helper...))
	if err != nil {
		return err
	}
	// idle timeout on, as in every zsync job (30m by default)
	c, err := sshtransport.NewClient(ctx, rw, sshtransport.ClientOptions{SoftwareVersion: "bench", IdleTimeout: 30 * time.Minute})
	if err != nil {
		return fmt.Errorf("%w (remote stderr: %s)", err, sshtransport.StderrOf(rw))
	}
	defer c.Close()
	setup := time.Since(start)

	var moved int64
	switch *mode {
	case "push":
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		cr := &countingReader{r: f}
		if err := c.Receive(ctx, zfs.RecvOptions{Target: "bench/sink"}, cr); err != nil {
			return err
		}
		moved = cr.n
	case "pull":
		vs, err := zfs.SendOptions{To: "bench/source@s"}.Validate()
		if err != nil {
			return err
		}
		rc, err := c.Send(ctx, vs)
		if err != nil {
			return err
		}
		buf := make([]byte, 1<<20)
		for {
			n, err := rc.Read(buf)
			moved += int64(n)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				_ = rc.Close()
				return err
			}
		}
		if err := rc.Close(); err != nil {
			return err
		}
	}
	if err := c.Close(); err != nil {
		return fmt.Errorf("closing the session: %w (remote stderr: %s)", err, sshtransport.StderrOf(rw))
	}
	if err := conn.Close(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if moved != want {
		return fmt.Errorf("%s moved %d bytes, want %d", *mode, moved, want)
	}
	fmt.Printf("zsync %s %d %.6f %.6f\n", *mode, moved, elapsed.Seconds(), setup.Seconds())
	return nil
}
