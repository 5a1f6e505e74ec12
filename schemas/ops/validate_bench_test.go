package ops

import (
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushgo/gateway/schemas/wire"
)

// BenchmarkValidateIntegrationEvent validates an update carrying the
// attrs of a translated Alertmanager alert (labels and annotations, one
// nested object): the check every integration report passes, twice.
func BenchmarkValidateIntegrationEvent(b *testing.B) {
	// The tests' cross-check of every hash view against json.Marshal
	// (hashview_internal_test.go) is not what production pays.
	defer func(v bool) { verifyHashEncoding = v }(verifyHashEncoding)
	verifyHashEncoding = false
	ch, ev := "01ARZ3NDEKTSV4RRFFQ69G5FAW", "01ARZ3NDEKTSV4RRFFQ69G5FAX"
	title, msg, status, sev := "HighCPU", "CPU above 90% on web-1", "firing", "critical"
	attrs := jsontext.Value(`{"alertname":"HighCPU","annotations":{"description":"CPU has been above 90% for 5 minutes","runbook_url":"https://runbooks.example.com/cpu"},"fingerprint":"1a2b3c4d5e6f7a8b","generator_url":"http://prometheus:9090/graph?g0.expr=cpu","instance":"web-1:9100","job":"node","receiver":"pushgo","severity":"critical","starts_at":1760000000123,"value":91.5}`)
	b.ReportAllocs()
	for b.Loop() {
		at := wire.Millis(1_760_000_000_000)
		req := EventRequest{EventTime: &at, ChannelID: &ch, EventID: &ev, Title: &title, Message: &msg, Status: &status, Severity: &sev, Attrs: attrs}
		if _, err := ValidateIntegrationEvent(EventUpdate, &req); err != nil {
			b.Fatal(err)
		}
	}
}
