package ops

import (
	"strings"
	"testing"

	"github.com/pushgo/gateway/schemas/apierr"
)

// TestMetadataValueMax: PushGo's 512 bytes by default, up to 16 KiB when
// the gateway is configured so, for every kind that carries metadata.
func TestMetadataValueMax(t *testing.T) {
	body := func(n int) *MessageRequest {
		req, aerr := MessageRequestFromQuery(map[string][]string{
			"channel_id": {"01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "password": {"correct-horse"}, "title": {"t"},
			"metadata": {`{"card":"` + strings.Repeat("x", n) + `"}`},
		})
		if aerr != nil {
			t.Fatal(aerr)
		}
		return req
	}
	if _, aerr := ValidateMessage(body(512), testNow); aerr != nil {
		t.Fatalf("512 bytes by default: %v", aerr)
	}
	if _, aerr := ValidateMessage(body(513), testNow); aerr == nil || aerr.Code != apierr.MetadataValueTooLong {
		t.Fatalf("513 bytes by default: %v", aerr)
	}
	wide := WithMetadataValueMax(MetadataValueMaxLimit)
	if _, aerr := ValidateMessage(body(MetadataValueMaxLimit), testNow, wide); aerr != nil {
		t.Fatalf("16 KiB when allowed: %v", aerr)
	}
	if _, aerr := ValidateMessage(body(MetadataValueMaxLimit+1), testNow, wide); aerr == nil || aerr.Code != apierr.MetadataValueTooLong {
		t.Fatalf("16 KiB + 1: %v", aerr)
	}
	for _, n := range []int{0, -1, MetadataValueMaxLimit + 1} {
		if CheckMetadataValueMax(n) == nil {
			t.Errorf("CheckMetadataValueMax(%d) accepted", n)
		}
	}
	if CheckMetadataValueMax(DefaultMetadataValueMax) != nil || CheckMetadataValueMax(MetadataValueMaxLimit) != nil {
		t.Error("CheckMetadataValueMax rejects a valid limit")
	}
}
