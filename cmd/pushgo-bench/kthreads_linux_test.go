package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

var burnSink int

// TestKthreadSamplerSeesABurst: the sampler, pointed at a thread of this
// process that burns a CPU for a while and polled as the pacer polls it,
// reports bursts holding that CPU time (the kernel's threads are sampled
// the same way, by pid).
func TestKthreadSamplerSeesABurst(t *testing.T) {
	tids := make(chan int)
	release := make(chan struct{})
	burnt := make(chan time.Duration, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tid := syscall.Gettid()
		tids <- tid
		<-release
		path := filepath.Join("/proc/self/task", strconv.Itoa(tid), "schedstat")
		read := func() (time.Duration, bool) {
			b, err := os.ReadFile(path)
			if err != nil {
				return 0, false
			}
			return parseSchedstat(b)
		}
		// Burn until the thread's own CPU time has grown by 40 ms (or, if
		// its time cannot be read or does not grow, for 5 seconds: the
		// test then fails, it never hangs).
		from, ok := read()
		deadline := time.Now().Add(5 * time.Second)
		for now, _ := read(); ok && now-from < 40*time.Millisecond && time.Now().Before(deadline); now, _ = read() {
			for i := range 100_000 {
				burnSink += i
			}
		}
		to, _ := read()
		burnt <- to - from
	}()
	tid := <-tids
	s := newKthreadSampler("/proc/self/task", []kthread{{pid: tid, name: "burner"}})
	s.poll(time.Now()) // the baseline, before the burn
	close(release)
	var total time.Duration
	for done := false; !done; {
		select {
		case total = <-burnt:
			done = true
		default:
			time.Sleep(time.Millisecond) // the pacer's pace
		}
		s.poll(time.Now())
	}
	bursts := s.close()
	names := namesIn(bursts)
	var cpu time.Duration
	for _, b := range bursts {
		cpu += b.cpu
		if !b.end.After(b.start) {
			t.Errorf("burst %+v does not end after it starts", b)
		}
	}
	if total < 40*time.Millisecond {
		t.Fatalf("the thread's CPU time, read from %s, grew by %v in 5 s of burning: schedstat unreadable?", "/proc/self/task/<tid>/schedstat", total)
	}
	if len(names) != 1 || names[0] != "burner" || cpu < 10*time.Millisecond || cpu > total+10*time.Millisecond {
		t.Errorf("bursts %d of %v (names %v), the thread burnt %v", len(bursts), cpu, names, total)
	}
}
