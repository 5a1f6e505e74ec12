package e2e

import (
	"syscall"
	"unsafe"
)

// limitFileSize sets the file size limit (RLIMIT_FSIZE) of the running
// process pid to bytes: a write past it fails with EFBIG (Go ignores
// SIGXFSZ), as on a disk that takes no more.
func limitFileSize(pid int, bytes uint64) error {
	lim := syscall.Rlimit{Cur: bytes, Max: bytes}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_PRLIMIT64, uintptr(pid), syscall.RLIMIT_FSIZE,
		uintptr(unsafe.Pointer(&lim)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
