package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/devices"
	schema "github.com/pushgo/gateway/schemas/devices"
)

// changedDevice is a device registry whose device changes between a
// register and its route's bind (another register of its key to another
// platform, or its removal, in between): BindRoute answers bindErr.
type changedDevice struct {
	Devices
	bindErr error
}

func (d changedDevice) Register(_ context.Context, key, platform string, _ time.Time) (devices.RegisterResult, error) {
	return devices.RegisterResult{Device: schema.Device{Key: key, Platform: platform}}, nil
}

func (d changedDevice) BindRoute(context.Context, string, string, string, string, time.Time) (schema.Device, error) {
	return schema.Device{}, d.bindErr
}

// A combined register whose bind is refused for the device answers what
// /channel/device answers (a 400 or a 404), not a 503 that invites a retry
// that cannot pass.
func TestRegisterWithARouteTheDeviceNoLongerFits(t *testing.T) {
	for err, want := range map[error]string{
		devices.ErrPlatformMismatch: `"error_code":"channel_type_platform_mismatch"`,
		devices.ErrDeviceNotFound:   `"error_code":"device_key_not_found"`,
	} {
		s := New(nil, nil, Options{Devices: changedDevice{bindErr: err}})
		body := `{"platform":"ios","device_key":"0123456789abcdef0123456789abcdef","channel_type":"apns","provider_token":"abababababababababababababababababababababababababababababababab"}`
		req := httptest.NewRequest(http.MethodPost, "/device/register", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code == http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("bind refused with %v: %d %s, want %s", err, rec.Code, rec.Body, want)
		}
	}
}
