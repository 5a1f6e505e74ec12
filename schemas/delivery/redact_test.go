package delivery

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/devices"
)

// TestRedactedIDsHoldNoDeviceKey: a delivery id as logs name it keeps the
// sequence and names the device by devices.KeyRef, never by its key (the
// device's credential on the inbox routes).
func TestRedactedIDsHoldNoDeviceKey(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	for _, got := range []string{LogID(42, key), RedactID(ID(42, key))} {
		if strings.Contains(got, key) || got != "42:"+devices.KeyRef(key) {
			t.Errorf("%q, want 42:%s", got, devices.KeyRef(key))
		}
	}
	for id, want := range map[string]string{
		ID(42, key): "42:" + devices.KeyRef(key), "outcome:" + ID(42, key): "outcome:42:" + devices.KeyRef(key),
		"summary:abc": "summary:abc", "expanded:42": "expanded:42",
	} {
		if got := LogMsgID(id); got != want {
			t.Errorf("LogMsgID(%q) = %q, want %q", id, got, want)
		}
	}
	if got := RedactID("not an id"); got != "malformed" {
		t.Errorf("RedactID of a malformed id: %q", got)
	}
	if devices.KeyRef(key) == devices.KeyRef(key+"0") {
		t.Error("two keys, one reference")
	}
}
