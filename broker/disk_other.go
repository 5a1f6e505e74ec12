//go:build !unix

package broker

import "errors"

// statDisk: not measured here (not unix).
func statDisk(string) (free, size int64, err error) {
	return 0, 0, errors.New("disk space not measured on this system")
}
