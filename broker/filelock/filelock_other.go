//go:build !unix

package filelock

// Lock: file locks need flock (unix).
func Lock(string) (func() error, error) { return nil, ErrUnsupported }
