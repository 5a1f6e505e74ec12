package alertmanager

import "testing"

// BenchmarkParse decodes and translates the sample notification (two
// firing alerts): the per-alert work of a webhook before the tracker.
func BenchmarkParse(b *testing.B) {
	body := []byte(sampleAM)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(body, now); err != nil {
			b.Fatal(err)
		}
	}
}
