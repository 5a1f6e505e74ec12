//go:build !linux

package brokertest

import "testing"

// SmallDisk skips t: a tmpfs is mounted on linux only.
func SmallDisk(t testing.TB, size int64) string {
	t.Skip("brokertest: SmallDisk mounts a tmpfs: linux only")
	return ""
}

// MountSmallDisk skips t: a tmpfs is mounted on linux only.
func MountSmallDisk(t testing.TB, dir string, size int64) string {
	t.Skip("brokertest: MountSmallDisk mounts a tmpfs: linux only")
	return ""
}

// FillDisk is linux only (SmallDisk skips elsewhere).
func FillDisk(t testing.TB, dir string, leave int64) {}

// FreeDisk is linux only (SmallDisk skips elsewhere).
func FreeDisk(t testing.TB, dir string) {}
