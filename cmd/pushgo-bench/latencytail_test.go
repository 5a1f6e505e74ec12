package main

import (
	"strings"
	"testing"
	"time"
)

func TestEpisodesGroupATailsStalls(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	// Two stalls a second apart: three pushes accepted 0, 5 and 130 ms into
	// the first (the third within 20 ms of the episode's last arrival so
	// far, at 120 ms), two in the second; and a lone slow push 3 s later.
	tail := []tailPoint{
		{At: ms(1000), Lat: 110 * time.Millisecond}, // given out of order
		{At: ms(0), Lat: 120 * time.Millisecond},
		{At: ms(5), Lat: 20 * time.Millisecond},
		{At: ms(130), Lat: 100 * time.Millisecond},
		{At: ms(1010), Lat: 105 * time.Millisecond},
		{At: ms(4000), Lat: 101 * time.Millisecond},
	}
	got := episodesOf(tail)
	want := tailEpisodes{pushes: 6, episodes: 3, longest: 230 * time.Millisecond, median: 115 * time.Millisecond, spacing: time.Second}
	if got != want {
		t.Fatalf("episodesOf = %+v, want %+v", got, want)
	}
	if s := got.String(); !strings.Contains(s, "6 pushes") || !strings.Contains(s, "3 episode(s)") || !strings.Contains(s, "apart") {
		t.Errorf("line %q does not say the pushes, episodes and spacing", s)
	}
	if s := episodesOf(nil).String(); s != "" {
		t.Errorf("an empty tail's line = %q, want none", s)
	}
	if s := episodesOf(tail[:1]).String(); strings.Contains(s, "apart") {
		t.Errorf("one episode has no spacing: %q", s)
	}
}
