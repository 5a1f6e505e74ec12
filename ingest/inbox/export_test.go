package inbox

import "time"

// SetCopiesWindow sets copiesWindow for a test, and restores it at its end.
func SetCopiesWindow(cleanup func(func()), d time.Duration) {
	old := copiesWindow
	copiesWindow = d
	cleanup(func() { copiesWindow = old })
}

// MessagesRead is how many inbox messages in's reads went through.
func (in *Inbox) MessagesRead() uint64 { return in.msgsRead.Load() }

// SetCopiesScan sets copiesScan for a test, and restores it at its end.
func SetCopiesScan(cleanup func(func()), n int) {
	old := copiesScan
	copiesScan = n
	cleanup(func() { copiesScan = old })
}

// SetOpClockSlack sets opClockSlack for a test, and restores it at its end.
func SetOpClockSlack(cleanup func(func()), d time.Duration) {
	old := opClockSlack
	opClockSlack = d
	cleanup(func() { opClockSlack = old })
}
