//go:build unix

package broker

import "golang.org/x/sys/unix"

// statDisk measures the file system under dir: the bytes an unprivileged
// writer may still use (the server runs as one in a container) and its
// size.
func statDisk(dir string) (free, size int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	bs := int64(st.Bsize) //nolint:unconvert // int64 on linux, uint32 on darwin
	return int64(st.Bavail) * bs, int64(st.Blocks) * bs, nil
}
