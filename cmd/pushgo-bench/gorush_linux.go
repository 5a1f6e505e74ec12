package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill gorush if this process dies first, so
// that it never outlives the benchmark.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
