package sshtransport

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/zsync-dev/zsync/zfs"
)

// TestOpenSSHBenchHelper is the zsync half of testdata/bench/openssh, which
// compares zsync's stream throughput through a private OpenSSH sshd with
// that of the ssh client. The script builds this test binary and runs it
// on both ends, with arguments after "--":
//
//	serve sink                  the remote command of a push: Serve with a
//	                            handler whose Receive discards the stream
//	serve source FILE           the remote command of a pull: Serve with a
//	                            handler whose Send streams FILE
//	client -mode push|pull ...  the local side: dial the sshd, run the
//	                            remote command, move the stream, and print
//	                            "zsync MODE BYTES SECONDS SETUP_SECONDS"
//
// Without arguments (any ordinary go test run) it does nothing: it is a
// helper process, not a test, so it neither skips nor counts as a check.
func TestOpenSSHBenchHelper(t *testing.T) {
	args := flag.Args()
	if len(args) == 0 {
		return // an ordinary test run: this helper has nothing to do
	}
	switch args[0] {
	case "serve":
		benchServe(args[1:]) // does not return
	case "client":
		if err := benchClient(args[1:]); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown helper mode %q", args[0])
	}
}

// benchHandler is the far end of the benchmark: the fake handler's
// counting Receive (a discard sink reading with a 1 MiB buffer) and a Send
// that streams a file.
type benchHandler struct {
	*fakeHandler
	file string
}

func (h *benchHandler) Send(ctx context.Context, s zfs.ValidatedSend) (io.ReadCloser, error) {
	if h.file == "" {
		return nil, errors.New("bench: no source file")
	}
	return os.Open(h.file)
}

// benchServe runs Serve on stdin/stdout and exits the process, so that the
// testing package prints nothing after the protocol on stdout.
func benchServe(args []string) {
	h := &benchHandler{fakeHandler: newFake()}
	h.recvCountOnly = true
	switch {
	case len(args) == 1 && args[0] == "sink":
	case len(args) == 2 && args[0] == "source":
		h.file = args[1]
	default:
		fmt.Fprintf(os.Stderr, "bench serve: want \"sink\" or \"source FILE\", got %q\n", args)
		os.Exit(2)
	}
	if err := Serve(context.Background(), os.Stdin, os.Stdout, h, ServeOptions{SoftwareVersion: "bench"}); err != nil {
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
	remote := fs.String("remote", "", "path of this test binary for the remote command")
	file := fs.String("file", "", "source file (pushed from here, or pulled from the far side)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := os.Stat(*file)
	if err != nil {
		return err
	}
	want := st.Size()
	helper := []string{"-test.run=^TestOpenSSHBenchHelper$", "--", "serve"}
	switch *mode {
	case "push":
		helper = append(helper, "sink")
	case "pull":
		helper = append(helper, "source", *file)
	default:
		return fmt.Errorf("-mode must be push or pull, not %q", *mode)
	}

	ctx := context.Background()
	start := time.Now()
	conn, err := Dial(ctx, DialOptions{
		Host: "127.0.0.1", Port: *port, IdentityFiles: []string{*key},
		KnownHostsFile: *knownHosts, SSHConfigFile: *sshConfig, KeepAlive: -1,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	rw, err := conn.Exec(ctx, RemoteCommand(*remote, helper...))
	if err != nil {
		return err
	}
	c, err := NewClient(ctx, rw, ClientOptions{SoftwareVersion: "bench"})
	if err != nil {
		return fmt.Errorf("%w (remote stderr: %s)", err, StderrOf(rw))
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
		return fmt.Errorf("closing the session: %w (remote stderr: %s)", err, StderrOf(rw))
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
