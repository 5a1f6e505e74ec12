// Package filelock takes an exclusive lock on a file for as long as a
// process holds it: a data directory's embedded broker store and its
// projection slots are each one process's, and two processes writing one
// store corrupt it (the NATS server takes no lock of its own: a second
// server on a running one's store rebuilt its stream state from under it).
//
// The lock is advisory (flock on unix): it excludes other holders of the
// same lock file, in other processes and in this one alike (the lock
// belongs to the open file), and the kernel drops it when the process
// ends, however it ends, so a crash leaves nothing to clean up.
package filelock

import "errors"

// ErrHeld is Lock's answer for a lock file another holder has locked.
var ErrHeld = errors.New("held by another process")

// ErrUnsupported is Lock's answer on a system or a file system without
// flock (errors.Is).
var ErrUnsupported = errors.New("file locks are not supported here")
