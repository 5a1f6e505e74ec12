package inbox

import "time"

// SetCopiesWindow sets copiesWindow for a test, and restores it at its end.
func SetCopiesWindow(cleanup func(func()), d time.Duration) {
	old := copiesWindow
	copiesWindow = d
	cleanup(func() { copiesWindow = old })
}
