package gateway

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pushgo/gateway/ingest/apitest"
)

// TestARestoredBrokerGetsItsProjectionRebuilt: the broker's data directory
// restored from a backup (which keeps the streams' creation times) under a
// projection folded past the backup's last operation. The projection is of
// another log: the gateway folds it again from the log at start, so
// /readyz reports the log's position, a thing created after the restore is
// read back, and the things the log no longer has are not listed. Before,
// the projection was trusted: /readyz said ready at its old position, the
// new thing (given a sequence the projection had already passed) answered
// 404 for good, and /channel/things listed things the log had lost.
func TestARestoredBrokerGetsItsProjectionRebuilt(t *testing.T) {
	cfg := Defaults()
	cfg.DataDir, cfg.NATSListen, cfg.HTTPAddr = t.TempDir(), "off", "127.0.0.1:0"
	brokerDir, backup := filepath.Join(cfg.DataDir, "jetstream"), filepath.Join(t.TempDir(), "jetstream")
	var g *Gateway
	start := func() *apitest.Client {
		t.Helper()
		started, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = started.Close(context.Background()) })
		g = started
		return apitest.New("http://" + g.Addr())
	}
	stop := func() {
		t.Helper()
		if err := g.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// ready waits for /readyz to answer 200 and returns its
	// projector_applied.
	ready := func(api *apitest.Client) float64 {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := api.Get(t, "/readyz", nil)
			if r.Status == 200 {
				return r.Object(t)["data"].(map[string]any)["projector_applied"].(float64)
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz not ready within 30s: %s", r)
			}
		}
	}

	api := start()
	r := apitest.MustOK(t, api.Post(t, "/channel/create", `{"channel_name":"restored","password":"correct-horse"}`))
	cred := `"channel_id":"` + r.Str("channel_id") + `","password":"correct-horse"`
	createThing := func(title string) string {
		t.Helper()
		return apitest.MustOK(t, api.Post(t, "/thing/create", `{`+cred+`,"title":"`+title+`","observed_at":1713750000000}`)).Str("thing_id")
	}
	things := []string{createThing("A")}
	apitest.MustOK(t, api.Post(t, "/thing/get", `{`+cred+`,"thing_id":"`+things[0]+`"}`)) // folded
	backedUp := ready(api)
	stop()
	if err := os.CopyFS(backup, os.DirFS(brokerDir)); err != nil {
		t.Fatal(err)
	}

	api = start()
	for _, title := range []string{"B", "C", "D", "E", "F"} {
		apitest.MustOK(t, api.Post(t, "/thing/get", `{`+cred+`,"thing_id":"`+createThing(title)+`"}`))
	}
	if applied := ready(api); applied <= backedUp {
		t.Fatalf("projector_applied %v after five more things, want above the backup's %v", applied, backedUp)
	}
	stop()
	if err := os.RemoveAll(brokerDir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(brokerDir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}

	api = start()
	// Ready says the fold is within its lag bound, which a rebuild's first
	// moment is (applied 0): the projection reaches the restored log's end.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		applied := ready(api)
		if applied == backedUp {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restore /readyz says projector_applied %v, want the restored log's %v", applied, backedUp)
		}
	}
	things = append(things, createThing("G"))
	if r := api.Post(t, "/thing/get", `{`+cred+`,"thing_id":"`+things[1]+`"}`); r.Status != 200 {
		t.Fatalf("/thing/get of a thing created after the restore: %s", r)
	}
	var listed []string
	for _, it := range apitest.MustOK(t, api.Post(t, "/channel/things", `{`+cred+`}`)).Data["items"].([]any) {
		listed = append(listed, it.(map[string]any)["thing_id"].(string))
	}
	slices.Sort(listed)
	slices.Sort(things)
	if !slices.Equal(listed, things) {
		t.Errorf("/channel/things after the restore: %v, want the log's %v", listed, things)
	}
}
