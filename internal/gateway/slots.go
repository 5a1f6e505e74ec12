package gateway

import (
	"errors"
	"fmt"
	"path/filepath"
)

// projectionDir is the projection store's directory in dataDir, claimed
// for this process's life: release frees it.
//
// With one slot (the default) it is dataDir/projection, as always. With
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
		return filepath.Join(dataDir, "projection"), func() error { return nil }, nil
	}
	for i := range slots {
		dir := filepath.Join(dataDir, fmt.Sprintf("projection-%d", i))
		release, err := lockSlot(dir + ".lock")
		if errors.Is(err, errSlotHeld) {
			continue
		}
		if err != nil {
			return "", nil, fmt.Errorf("projection slot %s: %w", dir, err)
		}
		return dir, release, nil
	}
	return "", nil, fmt.Errorf("all %d projection slots of %s are in use (PUSHGO_PROJECTION_SLOTS: at least the projector replicas sharing the directory)", slots, dataDir)
}

// errSlotHeld is lockSlot's answer for a slot another process holds.
var errSlotHeld = errors.New("held by another process")
