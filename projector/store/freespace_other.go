//go:build !unix

package store

import "errors"

// freeBytes: the free space is read on unix only.
func freeBytes(string) (uint64, error) { return 0, errors.ErrUnsupported }
