//go:build !linux

package e2e

import "errors"

// limitFileSize is Linux only (prlimit).
func limitFileSize(int, uint64) error { return errors.ErrUnsupported }
