package ops

import (
	"strings"
	"testing"

	"github.com/go-json-experiment/json"
)

// seed replaces the documents' placeholders with a valid channel.
func seed(body string) string {
	body = strings.ReplaceAll(body, "YOUR_CHANNEL_ID", cid)
	return strings.ReplaceAll(body, "YOUR_CHANNEL_PASSWORD", pw)
}

// TestSeedBodies validates the curl bodies of seeds 000, 001 and 002 as
// printed (layout included) and pins their normalised payloads.
func TestSeedBodies(t *testing.T) {
	cases := []struct {
		name   string
		op     Name
		body   string
		entity string
		thing  string
		golden string
	}{
		{"000 event create", EventCreate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"title": "Production deployment",
"status": "running",
"message": "Deployment started",
"severity": "normal",
"event_time": 1713750000000,
"started_at": 1713750000000,
"attrs": {
"service": "api",
"revision": "8f3c2a1"
}
}`, "", "",
			`{"event_id":"","title":"Production deployment","status":"running","message":"Deployment started","severity":"normal","event_time":1713750000000,"started_at":1713750000000,"attrs":{"service":"api","revision":"8f3c2a1"}}`},
		{"000 event update", EventUpdate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"event_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"status": "publishing",
"message": "Image pushed, publishing release",
"severity": "normal",
"event_time": 1713750300000,
"attrs": {
"progress": 0.75
}
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "",
			`{"event_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","status":"publishing","message":"Image pushed, publishing release","severity":"normal","event_time":1713750300000,"attrs":{"progress":0.75}}`},
		{"000 event close", EventClose, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"event_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"status": "success",
"message": "Production deployment completed",
"severity": "normal",
"event_time": 1713750600000,
"ended_at": 1713750600000,
"attrs": {
"progress": 1
}
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "",
			`{"event_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","status":"success","message":"Production deployment completed","severity":"normal","event_time":1713750600000,"ended_at":1713750600000,"attrs":{"progress":1}}`},
		{"000 thing-linked event", EventCreate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"thing_id": "3b7fd2e87d7d4d6d9c7f3a318ac21f02",
"title": "Database lag",
"status": "open",
"message": "Replica lag exceeded 30 seconds",
"severity": "high",
"event_time": 1713750000000,
"started_at": 1713750000000
}`, "", "3b7fd2e87d7d4d6d9c7f3a318ac21f02",
			`{"event_id":"","thing_id":"3b7fd2e87d7d4d6d9c7f3a318ac21f02","title":"Database lag","status":"open","message":"Replica lag exceeded 30 seconds","severity":"high","event_time":1713750000000,"started_at":1713750000000}`},
		{"001 event create", EventCreate, `{ "channel_id": "YOUR_CHANNEL_ID", "password": "YOUR_CHANNEL_PASSWORD", "title": "生产环境部署", "status": "running", "message": "部署任务已开始", "severity": "normal", "event_time": 1713750000000, "started_at": 1713750000000, "attrs": { "service": "api", "revision": "8f3c2a1" } }`, "", "",
			`{"event_id":"","title":"生产环境部署","status":"running","message":"部署任务已开始","severity":"normal","event_time":1713750000000,"started_at":1713750000000,"attrs":{"service":"api","revision":"8f3c2a1"}}`},
		{"001 event update", EventUpdate, `{ "channel_id": "YOUR_CHANNEL_ID", "password": "YOUR_CHANNEL_PASSWORD", "event_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "status": "publishing", "message": "镜像已推送,正在发布", "severity": "normal", "event_time": 1713750300000, "attrs": { "progress": 0.75 } }`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "",
			`{"event_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","status":"publishing","message":"镜像已推送,正在发布","severity":"normal","event_time":1713750300000,"attrs":{"progress":0.75}}`},
		{"001 event close", EventClose, `{ "channel_id": "YOUR_CHANNEL_ID", "password": "YOUR_CHANNEL_PASSWORD", "event_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "status": "success", "message": "生产环境部署完成", "severity": "normal", "event_time": 1713750600000, "ended_at": 1713750600000, "attrs": { "progress": 1 } }`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "",
			`{"event_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","status":"success","message":"生产环境部署完成","severity":"normal","event_time":1713750600000,"ended_at":1713750600000,"attrs":{"progress":1}}`},
		{"001 thing-linked event", EventCreate, `{ "channel_id": "YOUR_CHANNEL_ID", "password": "YOUR_CHANNEL_PASSWORD", "thing_id": "3b7fd2e87d7d4d6d9c7f3a318ac21f02", "title": "数据库延迟", "status": "open", "message": "从库延迟超过 30 秒", "severity": "high", "event_time": 1713750000000, "started_at": 1713750000000}`, "", "3b7fd2e87d7d4d6d9c7f3a318ac21f02",
			`{"event_id":"","thing_id":"3b7fd2e87d7d4d6d9c7f3a318ac21f02","title":"数据库延迟","status":"open","message":"从库延迟超过 30 秒","severity":"high","event_time":1713750000000,"started_at":1713750000000}`},
		{"002 thing create", ThingCreate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"title": "Home NAS",
"description": "Primary storage in the living room rack",
"observed_at": 1713750000000,
"tags": ["nas", "home"],
"location_type": "physical",
"location_value": "home/living-room",
"attrs": {
"online": true,
"disk_used": 0.72,
"temperature": 43.2
}
}`, "", "",
			`{"thing_id":"","title":"Home NAS","description":"Primary storage in the living room rack","tags":["nas","home"],"observed_at":1713750000000,"created_at":1713750000000,"location_type":"physical","location_value":"home/living-room","attrs":{"online":true,"disk_used":0.72,"temperature":43.2}}`},
		{"002 thing update", ThingUpdate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"thing_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"observed_at": 1713750600000,
"attrs": {
"disk_used": 0.74,
"temperature": 44.1
}
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
			`{"thing_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","observed_at":1713750600000,"attrs":{"disk_used":0.74,"temperature":44.1}}`},
		{"002 attrs removal patch", ThingUpdate, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"thing_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"observed_at": 1713750900000,
"attrs": {
"temporary_alarm": null
}
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
			`{"thing_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","observed_at":1713750900000,"attrs":{"temporary_alarm":null}}`},
		{"002 thing archive", ThingArchive, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"thing_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"observed_at": 1713751200000,
"attrs": {
"online": false
}
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
			`{"thing_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","observed_at":1713751200000,"attrs":{"online":false}}`},
		{"002 thing delete", ThingDelete, `{
"channel_id": "YOUR_CHANNEL_ID",
"password": "YOUR_CHANNEL_PASSWORD",
"thing_id": "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
"observed_at": 1713751800000,
"deleted_at": 1713751800000
}`, "8a1fc4b3d9f04fd2857f92f66f7cc5d1", "8a1fc4b3d9f04fd2857f92f66f7cc5d1",
			`{"thing_id":"8a1fc4b3d9f04fd2857f92f66f7cc5d1","observed_at":1713751800000,"deleted_at":1713751800000}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := validateBody(c.op, []byte(seed(c.body)), testNow)
			if err != nil {
				t.Fatalf("seed body rejected: %v", err)
			}
			if v.Op != c.op || v.ChannelID != cid || v.Password != pw || v.OpID != "" || v.EntityID != c.entity || v.ThingID != c.thing {
				t.Errorf("validated = %+v", v)
			}
			got, merr := json.Marshal(v.Payload, json.Deterministic(true))
			if merr != nil {
				t.Fatal(merr)
			}
			if string(got) != c.golden {
				t.Errorf("payload\n got %s\nwant %s", got, c.golden)
			}
		})
	}
}
