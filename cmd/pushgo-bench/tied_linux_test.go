package main

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestChildOutlivesTheThreadThatAskedForIt: a child started by startTied
// lives on when the thread that asked for it ends (as the projection
// store's job threads may, in this process): it still echoes a line after
// that thread is gone. A child tied to that thread instead would have been
// sent SIGKILL as the thread ended, before the line was written.
func TestChildOutlivesTheThreadThatAskedForIt(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cat)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The asker: a goroutine pinned to a thread that ends with it. The
	// runtime never ends the main thread (a goroutine that ends pinned to
	// it wedges it instead), so an asker that lands there gives way to
	// another.
	var tid int
	for tid == 0 {
		started := make(chan error, 1)
		asker := make(chan int, 1)
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == syscall.Getpid() {
				runtime.UnlockOSThread()
				asker <- 0
				return
			}
			asker <- syscall.Gettid() // never unlocked: the thread ends with this goroutine
			started <- startTied(cmd)
		}()
		if tid = <-asker; tid != 0 {
			if err := <-started; err != nil {
				t.Fatal(err)
			}
		}
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	// The asking thread's end: its entry leaves /proc.
	task := "/proc/self/task/" + strconv.Itoa(tid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d did not end", tid)
		}
	}
	if _, err := in.Write([]byte("alive\n")); err != nil {
		t.Fatalf("the child is gone: %v", err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "alive\n" {
		t.Fatalf("the child answered %q, %v: killed with the thread that asked for it", line, err)
	}
}
