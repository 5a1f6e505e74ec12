package gateway

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/pushgo/gateway/broker/filelock"
)

// projectionDir is the projection store's directory in dataDir, claimed
// for this process's life: release frees it.
//
// With one slot (the default) it is dataDir/projection, as always, claimed
// through dataDir/projection.lock where file locks are supported (Pebble's
// own lock refuses a second opener too, but with "resource temporarily
// unavailable", which does not say that another process runs on it). With
// more (PUSHGO_PROJECTION_SLOTS), several projector processes share one
// data directory, a volume their orchestrator gives every replica of the
// service (compose's deploy.replicas mounts one named volume in each):
// each takes the first of dataDir/projection-0, projection-1, … that no
// other process holds, through a lock file beside it, which it keeps
// while it runs (a rebuild, which reopens the store, keeps its slot). A
// replica recreated finds a projection of the log to go on from, instead
// of folding it all again, and of losing the state of entities whose
// operations have left the log.
func projectionDir(dataDir string, slots int) (dir string, release func() error, err error) {
	if slots <= 1 {
		dir := filepath.Join(dataDir, "projection")
		release, err := filelock.Lock(dir + ".lock")
		switch {
		case errors.Is(err, filelock.ErrHeld):
			return "", nil, fmt.Errorf("the projection %s is in use by another process (its lock %s.lock is held): "+
				"stop it, or give this one another PUSHGO_DATA_DIR (several projector replicas on one directory: PUSHGO_PROJECTION_SLOTS)", dir, dir)
		case errors.Is(err, filelock.ErrUnsupported):
			return dir, func() error { return nil }, nil // Pebble's own lock still refuses a second opener
		case err != nil:
			return "", nil, fmt.Errorf("projection %s: %w", dir, err)
		}
		return dir, release, nil
	}
	for i := range slots {
		dir := filepath.Join(dataDir, fmt.Sprintf("projection-%d", i))
		release, err := filelock.Lock(dir + ".lock")
		if errors.Is(err, filelock.ErrHeld) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("projection slot %s: %w", dir, err)
		}
		return dir, release, nil
	}
	return "", nil, fmt.Errorf("all %d projection slots of %s are in use (PUSHGO_PROJECTION_SLOTS: at least the projector replicas sharing the directory)", slots, dataDir)
}
