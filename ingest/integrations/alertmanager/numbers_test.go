package alertmanager

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// Issue 12: a number a float64 cannot hold is invalid_json_data naming
// it, unknown members included (Grafana's values already were, by type).
func TestDecodeRefusesHugeNumbers(t *testing.T) {
	ok := `{"status":"firing","labels":{"alertname":"A"},"startsAt":"2025-01-01T00:00:00Z","fingerprint":"f"`
	for _, c := range []struct{ body, field string }{
		{`{"alerts":[` + ok + `,"values":{"B":1e400}}]}`, "alerts.0.values.B"},
		{`{"alerts":[` + ok + `}],"truncatedAlerts":1e999}`, "truncatedAlerts"},
		{`{"alerts":[` + ok + `}],"someNewField":{"x":-1e309}}`, "someNewField.x"},
	} {
		_, err := Decode([]byte(c.body))
		if err == nil || err.Code != apierr.InvalidJSONData || !strings.Contains(err.Detail, c.field) || !strings.Contains(err.Detail, "out of range") {
			t.Errorf("%.60s: %v, want invalid_json_data naming %s", c.body, err, c.field)
		}
	}
	if _, err := Decode([]byte(`{"alerts":[` + ok + `,"values":{"B":1.5e300}}]}`)); err != nil {
		t.Fatalf("a number within range refused: %v", err)
	}
}
