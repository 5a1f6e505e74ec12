package consume

import "time"

// NextPoll exposes nextPoll: the feed's poll schedule.
var NextPoll = nextPoll

// FeedPoll and FeedPollIdle are the schedule's bounds.
const FeedPoll, FeedPollIdle = feedPoll, feedPollIdle

// SetPollAfter makes a loop on its feed take the interval after each of
// its polls from f until restore is called. Not safe while a loop runs.
func SetPollAfter(f func(every time.Duration, news bool) time.Duration) (restore func()) {
	old := pollAfter
	pollAfter = f
	return func() { pollAfter = old }
}

// BreakPull ends the pull in progress as a failure does (no hold), so the
// loop binds its consumer again; pulling reports whether a later pull is
// in progress. It needs a pull in progress.
func (l *Loop) BreakPull() (pulling func() bool) {
	it := l.it.Load()
	(*it).Stop()
	return func() bool {
		cur := l.it.Load()
		return cur != nil && cur != it && l.Running()
	}
}
