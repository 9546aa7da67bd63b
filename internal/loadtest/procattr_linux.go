package loadtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill a child process if the load tool dies,
// so no server or worker outlives a crashed or killed run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
