//go:build unix

package snap

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// setProcessGroup starts the hook in its own process group and makes
// cancellation kill the whole group, so that children a hook script started
// (a sleep, a database client) do not outlive a timed-out hook.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
}
