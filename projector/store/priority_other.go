//go:build !linux

package store

// lowerBackgroundPriority and restoreBackgroundPriority leave the thread
// alone where nice is not per thread.
func lowerBackgroundPriority()   {}
func restoreBackgroundPriority() {}
