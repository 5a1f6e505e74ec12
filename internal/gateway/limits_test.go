package gateway

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/limits"
)

// TestLoadLimits: the abuse limits are on by default and each is read
// from its PUSHGO_LIMIT_* variable (flags win); "off" turns one off and a
// value that is not one is an error.
func TestLoadLimits(t *testing.T) {
	d, err := Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := limits.Defaults()
	if l := d.Limits; l.PasswordFailuresPerAddr != want.PasswordFailuresPerAddr || l.DeviceRegisterPerMinute != want.DeviceRegisterPerMinute ||
		l.TokensPerChannel != 100 || l.Devices != want.Devices || l.BodyRead != want.BodyRead || l.IntegrationPerToken != 0 || len(l.TrustedProxies) != 0 {
		t.Fatalf("default limits %+v", l)
	}
	env := map[string]string{"PUSHGO_LIMIT_DEVICES": "5000", "PUSHGO_LIMIT_DEVICE_REGISTER": "off",
		"PUSHGO_LIMIT_PASSWORD_BACKOFF_MAX": "15m", "PUSHGO_TRUSTED_PROXIES": "10.0.0.0/8"}
	c, err := Load([]string{"-limit-devices", "7000"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Limits; l.Devices != 7000 || l.DeviceRegisterPerMinute != -1 || l.PasswordBackoffMax != 15*time.Minute ||
		len(l.TrustedProxies) != 1 || l.TrustedProxies[0] != netip.MustParsePrefix("10.0.0.0/8") || l.ChannelCreatePerMinute != want.ChannelCreatePerMinute {
		t.Fatalf("loaded limits %+v", l)
	}
	for _, bad := range []map[string]string{
		{"PUSHGO_LIMIT_TOKENS_PER_CHANNEL": "many"},
		{"PUSHGO_LIMIT_BODY_READ": "-1s"},
		{"PUSHGO_TRUSTED_PROXIES": "my-proxy"},
	} {
		if _, err := Load(nil, func(k string) string { return bad[k] }); err == nil {
			t.Errorf("Load accepted %v", bad)
		}
	}
}
