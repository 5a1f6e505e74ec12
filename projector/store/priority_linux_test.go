//go:build linux

package store

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pushgo/gateway/projector/fold"
	"github.com/pushgo/gateway/schemas/ops"
)

// TestBackgroundJobsRunNiced: a flush runs on a thread niced
// backgroundNiceIncrement below the process,
// so the HTTP handlers and the fold of the same process come first when
// the cores are short; and once the store is idle no thread of the process
// is left niced (a request served on such a thread would wait behind
// everything else).
func TestBackgroundJobsRunNiced(t *testing.T) {
	type job struct{ tid, nice int }
	var mu sync.Mutex
	var jobs []job
	lower := onBackgroundJob
	base, err := threadNice("thread-self")
	if err != nil {
		t.Fatal(err)
	}
	want := min(base+backgroundNiceIncrement, 19)
	if want == base {
		t.Fatalf("the test runs at nice %d: a background job's thread cannot be told from the others", base)
	}
	onBackgroundJob = func() {
		lower()
		// Pinned for the two reads: a job on the main thread is left
		// unpinned, and read across a move its nice would be one thread's
		// and its id another's.
		runtime.LockOSThread()
		n, err := threadNice("thread-self")
		tid := syscall.Gettid()
		runtime.UnlockOSThread()
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		jobs = append(jobs, job{tid, n})
		mu.Unlock()
	}
	t.Cleanup(func() { onBackgroundJob = lower })

	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Flushes until one runs off the main thread (which is left at the
	// process's priority: the runtime never ends it, so it could not be
	// given back where the process may not raise a priority).
	offMain := 0
	for round := 0; offMain == 0; round++ {
		if round == 50 {
			t.Fatalf("50 flushes, every one on the main thread: %v", jobs)
		}
		b := s.NewBatch()
		for i := range 100 {
			th := &fold.Thing{ChannelID: ch, ThingID: "thing-" + strconv.Itoa(round*100+i), State: ops.ThingActive}
			if err := b.PutThing(nil, th); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(uint64(round*100 + 100)); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		seen := slices.Clone(jobs)
		mu.Unlock()
		// Checked with the lock released: a failing check's Close flushes,
		// and the flush's hook takes the lock.
		for _, j := range seen {
			switch {
			case j.tid == syscall.Getpid():
				if j.nice != base {
					t.Fatalf("a job on the main thread ran at nice %d, want it left at %d", j.nice, base)
				}
			case j.nice != want:
				t.Fatalf("a job ran at nice %d, want %d (the process's %d + %d); jobs %v", j.nice, want, base, backgroundNiceIncrement, seen)
			default:
				offMain++
			}
		}
	}

	// The jobs' goroutines end with their jobs, and their threads with
	// them: wait for that (every thread back at the process's nice), not
	// for a time.
	deadline := time.Now().Add(30 * time.Second)
	for {
		niced, err := threadsAtNice(want)
		if err != nil {
			t.Fatal(err)
		}
		if len(niced) == 0 && s.Background().Idle() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("threads %v still at nice %d 30 s after the store's last job began", niced, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// threadNice is the nice value of a thread: /proc/<task>/stat's 19th field.
func threadNice(task string) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", task, "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (2nd field) is in parentheses and may hold spaces.
	rest := b[bytes.LastIndexByte(b, ')')+2:]
	f := bytes.Fields(rest) // from the 3rd field
	return strconv.Atoi(string(f[19-3]))
}

// threadsAtNice lists the process's threads at nice.
func threadsAtNice(nice int) ([]string, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	var niced []string
	for _, task := range tasks {
		n, err := threadNice(filepath.Join("self/task", task.Name()))
		if err != nil {
			continue // the thread ended
		}
		if n == nice {
			niced = append(niced, task.Name())
		}
	}
	return niced, nil
}
