//go:build !unix

package gateway

import "errors"

// lockSlot: projection slots need flock (unix).
func lockSlot(string) (func() error, error) {
	return nil, errors.New("projection slots need a unix system")
}
