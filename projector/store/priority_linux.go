//go:build linux

package store

import (
	"runtime"
	"sync"
	"syscall"
)

// backgroundNiceIncrement is how far below the process's CPU priority the
// threads of the store's flushes and compactions run (nice, 19 at most).
const backgroundNiceIncrement = 10

// niced holds the nice value each thread running a background job had
// before it, by thread id.
var niced sync.Map

// lowerBackgroundPriority is called by Pebble on the goroutine of a flush or
// a compaction as the job begins. It pins the goroutine to its thread and
// lowers that thread's CPU priority, so that when the cores are short the
// kernel runs the HTTP handlers and the fold first and the store's
// background work in what is left.
func lowerBackgroundPriority() {
	// Pinned first: a thread id read before the pin may be another
	// thread's by the time its priority is set (the goroutine moved), which
	// then ran whatever goroutine came to it niced, for good, while the job
	// ran at full priority (TestBackgroundJobsRunNiced, 1 run in about 30).
	runtime.LockOSThread()
	tid := syscall.Gettid()
	if tid == syscall.Getpid() {
		// The main thread: the runtime never ends it, so a job that could
		// not give its priority back would leave it niced for good.
		runtime.UnlockOSThread()
		return
	}
	nice, err := threadNiceOf(tid)
	if err != nil {
		return // pinned; unpinned when the job ends
	}
	if syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(nice+backgroundNiceIncrement, 19)) == nil {
		niced.Store(tid, nice)
	}
}

// restoreBackgroundPriority is called by Pebble on the same goroutine as
// the job ends. It gives the thread its priority back and unpins it. Only
// a process allowed to raise a priority can (CAP_SYS_NICE or RLIMIT_NICE);
// otherwise the goroutine, Pebble's for that one job, ends pinned, and its
// thread ends with it: the lowered priority never passes to another
// goroutine.
func restoreBackgroundPriority() {
	tid := syscall.Gettid()
	if nice, ok := niced.LoadAndDelete(tid); ok {
		if syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice.(int)) != nil {
			return
		}
	}
	runtime.UnlockOSThread()
}

// threadNiceOf is a thread's nice value. The system call answers 20 - nice
// (the C library converts it back; package syscall does not).
func threadNiceOf(tid int) (int, error) {
	prio, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	return 20 - prio, err
}
