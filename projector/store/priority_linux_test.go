//go:build linux

package store

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	var mu sync.Mutex
	var seen []int
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
		n, err := threadNice("thread-self")
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		seen = append(seen, n)
		mu.Unlock()
	}
	t.Cleanup(func() { onBackgroundJob = lower })

	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	for i := range 100 {
		th := &fold.Thing{ChannelID: ch, ThingID: "thing-" + strconv.Itoa(i), State: ops.ThingActive}
		if err := b.PutThing(nil, th); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(100); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := append([]int(nil), seen...)
	mu.Unlock()
	if len(got) == 0 || got[0] != want {
		t.Fatalf("the flush ran at nice %v, want %d (the process's %d + %d)", got, want, base, backgroundNiceIncrement)
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
