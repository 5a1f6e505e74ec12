package main

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startTied starts cmd so that the kernel kills it if this process dies
// first: it never outlives the benchmark.
//
// The kernel ties a child to the thread that started it, not to the
// process (PR_SET_PDEATHSIG), and the gateway in this process ends
// threads: the projection store runs each flush and compaction on a
// thread of its own at a lower priority, and where the process may not
// raise that priority back the job's goroutine ends pinned to its thread,
// which the Go runtime then ends. A child started from such a thread would
// be killed with it. So every child is started from one thread that lives
// as long as the process.
func startTied(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	done := make(chan error, 1)
	spawns <- spawn{cmd: cmd, done: done}
	return <-done
}

type spawn struct {
	cmd  *exec.Cmd
	done chan error
}

// spawns feeds the one thread that starts the children.
var spawns = func() chan spawn {
	c := make(chan spawn)
	go func() {
		runtime.LockOSThread() // never unlocked: this thread lives as long as the process
		for s := range c {
			s.done <- s.cmd.Start()
		}
	}()
	return c
}()
