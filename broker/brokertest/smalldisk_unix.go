//go:build linux

package brokertest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// SmallDisk mounts a tmpfs of size bytes in a temporary directory for t
// and returns its path; it is unmounted when t ends (before the directory
// is removed: register it before anything that writes there, such as a
// broker started on it, so that their cleanups run first). It skips t, saying
// why, when the process may not mount (not root, or a container without
// CAP_SYS_ADMIN): a full disk cannot be made otherwise without a fake of
// the file system.
func SmallDisk(t testing.TB, size int64) string {
	t.Helper()
	return MountSmallDisk(t, filepath.Join(t.TempDir(), "disk"), size)
}

// MountSmallDisk is SmallDisk on dir (created if need be): a gateway's
// <data dir>/jetstream, to fill the broker's disk and no other.
func MountSmallDisk(t testing.TB, dir string, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("brokertest: SmallDisk mounts a tmpfs, which needs root (run as root, as CI does)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			t.Skipf("brokertest: SmallDisk: mount tmpfs not permitted here: %v", err)
		}
		t.Fatalf("brokertest: SmallDisk: mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			_ = unix.Unmount(dir, unix.MNT_DETACH)
		}
	})
	return dir
}

// FillDisk leaves about leave bytes free on the file system of dir, with a
// file in dir that FreeDisk removes. Others writing there meanwhile (a
// broker) take their share first.
func FillDisk(t testing.TB, dir string, leave int64) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "filler"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 20 {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		fill := int64(st.Bavail)*int64(st.Bsize) - leave
		if fill <= 0 {
			return
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Fallocate(int(f.Fd()), 0, fi.Size(), fill)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("brokertest: FillDisk: %v", err)
		}
		// Someone wrote meanwhile: measure again.
	}
	t.Fatal("brokertest: FillDisk: the free space kept shrinking under it")
}

// FreeDisk removes what FillDisk wrote in dir.
func FreeDisk(t testing.TB, dir string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
}
