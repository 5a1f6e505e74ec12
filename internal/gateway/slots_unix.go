//go:build unix

package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
)

// lockSlot takes an exclusive lock on the file at path (created if need
// be), held until release: flock, so that two claims in one process
// exclude each other too.
func lockSlot(path string) (release func() error, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errSlotHeld
		}
		return nil, err
	}
	return f.Close, nil // closing the file drops the lock
}
