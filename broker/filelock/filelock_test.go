package filelock_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/pushgo/gateway/broker/filelock"
)

// TestLockExcludesUntilReleased: a second Lock of the same file is refused
// with ErrHeld while the first holds it, in this process and in another,
// and granted once it is released.
func TestLockExcludesUntilReleased(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("flock: unix only (Lock answers ErrUnsupported)")
	}
	path := filepath.Join(t.TempDir(), "sub", "store.lock")
	release, err := filelock.Lock(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := filelock.Lock(path); !errors.Is(err, filelock.ErrHeld) {
		t.Fatalf("second Lock in this process: %v, want ErrHeld", err)
	}
	// Another process: the test binary run as a child that tries the lock.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "FILELOCK_CHILD="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	again, err := filelock.Lock(path)
	if err != nil {
		t.Fatalf("Lock after release: %v", err)
	}
	_ = again()
}

// TestMain runs TestLockExcludesUntilReleased's other process when asked
// (FILELOCK_CHILD): it exits 0 only if the lock it is given is held
// elsewhere.
func TestMain(m *testing.M) {
	if path := os.Getenv("FILELOCK_CHILD"); path != "" {
		if _, err := filelock.Lock(path); !errors.Is(err, filelock.ErrHeld) {
			fmt.Fprintf(os.Stderr, "Lock in another process: %v, want ErrHeld\n", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
