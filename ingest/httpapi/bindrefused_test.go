package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pushgo/gateway/broker/devices"
	"github.com/pushgo/gateway/broker/registry"
	"github.com/pushgo/gateway/schemas/apierr"
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

// sweptDevice is a device registry whose device the idle sweep deletes
// between a route's check of it and its subscription.
type sweptDevice struct{ Devices }

func (sweptDevice) Device(_ context.Context, key string) (schema.Device, bool, error) {
	return schema.Device{Key: key, Platform: "ios"}, true, nil
}

func (sweptDevice) Subscribe(context.Context, string, string, time.Time) (bool, error) {
	return false, fmt.Errorf("subscribe: %w", devices.ErrDeviceNotFound)
}

// anyPassword is a channel registry that knows every channel.
type anyPassword struct{ Channels }

func (anyPassword) Authorize(_ context.Context, id, _ string) (registry.Channel, *apierr.Error) {
	return registry.Channel{ID: id, Name: "ch"}, nil
}

// A subscription of a device deleted since the route found it answers
// device_key_not_found, on which the apps register again, not a 503 whose
// retry cannot pass.
func TestSubscribeOfADeviceSweptMeanwhile(t *testing.T) {
	s := New(anyPassword{}, nil, Options{Devices: sweptDevice{}})
	const key, ch = "0123456789abcdef0123456789abcdef", "06AJH9QS1RS5JVXKN7VPMTF2CC"
	for path, body := range map[string]string{
		"/channel/subscribe": `{"device_key":"` + key + `","channel_id":"` + ch + `","password":"correct-horse"}`,
		"/channel/sync":      `{"device_key":"` + key + `","channels":[{"channel_id":"` + ch + `","password":"correct-horse"}]}`,
	} {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error_code":"device_key_not_found"`) {
			t.Errorf("%s: %d %s, want 404 device_key_not_found", path, rec.Code, rec.Body)
		}
	}
}
