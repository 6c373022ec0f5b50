//go:build !unix

package snap

import "os/exec"

// setProcessGroup leaves the default cancellation (kill the hook process)
// on systems without process groups.
func setProcessGroup(cmd *exec.Cmd) {}
