package main

import (
	"strconv"
	"strings"
	"time"
)

// bodies builds the ~bodySize-byte JSON requests of the measured phases.
// The padding goes into "description" (free text, no length rule), sized
// once per route from a representative body, so each request is within a
// few bytes of the target whatever its varying numbers.
type bodies struct {
	channelID, password string
	eventPad, thingPad  string
}

func newBodies(channelID, password string, size int) *bodies {
	b := &bodies{channelID: channelID, password: password}
	const sampleID = "0123456789abcdef0123456789abcdef"
	ms := time.Now().UnixMilli()
	b.eventPad = padding(size - len(b.eventUpdate(nil, sampleID, ms, 123456)))
	b.thingPad = padding(size - len(b.thingUpdate(nil, sampleID, ms, 123456)))
	return b
}

func padding(n int) string {
	const alphabet = "lorem ipsum dolor sit amet consectetur adipiscing elit "
	if n <= 0 {
		return ""
	}
	return strings.Repeat(alphabet, n/len(alphabet)+1)[:n]
}

// eventUpdate appends a POST /event/update body to dst.
func (b *bodies) eventUpdate(dst []byte, eventID string, ms int64, n uint64) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, b.channelID...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, b.password...)
	dst = append(dst, `","event_id":"`...)
	dst = append(dst, eventID...)
	dst = append(dst, `","status":"running","message":"step `...)
	dst = strconv.AppendUint(dst, n%1_000_000, 10)
	dst = append(dst, ` of the nightly job","severity":"normal","event_time":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	dst = append(dst, `,"description":"`...)
	dst = append(dst, b.eventPad...)
	dst = append(dst, `"}`...)
	return dst
}

// thingUpdate appends a POST /thing/update body to dst: an attrs patch
// with a couple of changing readings, as a monitoring sender would send.
func (b *bodies) thingUpdate(dst []byte, thingID string, ms int64, n uint64) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, b.channelID...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, b.password...)
	dst = append(dst, `","thing_id":"`...)
	dst = append(dst, thingID...)
	dst = append(dst, `","observed_at":`...)
	dst = strconv.AppendInt(dst, ms, 10)
	dst = append(dst, `,"attrs":{"cpu_pct":`...)
	dst = strconv.AppendUint(dst, n%100, 10)
	dst = append(dst, `,"temp_c":`...)
	dst = strconv.AppendUint(dst, 30+n%50, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, n%1_000_000, 10)
	dst = append(dst, `},"description":"`...)
	dst = append(dst, b.thingPad...)
	dst = append(dst, `"}`...)
	return dst
}

// eventCreate and thingCreate are the bodies of the unmeasured set-up.
func (b *bodies) eventCreate(i int, ms int64) []byte {
	return []byte(`{"channel_id":"` + b.channelID + `","password":"` + b.password +
		`","title":"bench event ` + strconv.Itoa(i) + `","status":"running","message":"started","severity":"normal","event_time":` +
		strconv.FormatInt(ms, 10) + `}`)
}

func (b *bodies) thingCreate(i int, ms int64) []byte {
	return []byte(`{"channel_id":"` + b.channelID + `","password":"` + b.password +
		`","title":"bench thing ` + strconv.Itoa(i) + `","observed_at":` + strconv.FormatInt(ms, 10) + `}`)
}

// peerBodySize is the size of every request of the peer comparison (-ntfy):
// the 421-byte JSON message.
const peerBodySize = 421

// peerBodies builds the requests of the peer comparison: one notification,
// a title with the request's number and a text, as a POST /message to us
// and as a JSON publish (POST /) to ntfy, each exactly size bytes. The
// number is zero-padded to seven digits so that every request of a run has
// the same size.
type peerBodies struct {
	channelID, password, topic string
	oursPad, ntfyPad           string
}

func newPeerBodies(channelID, password, topic string, size int) *peerBodies {
	b := &peerBodies{channelID: channelID, password: password, topic: topic}
	b.oursPad = padding(size - len(b.ours(nil, 0)))
	b.ntfyPad = padding(size - len(b.ntfy(nil, 0)))
	return b
}

// appendSeq appends n modulo 10^7, zero-padded to seven digits.
func appendSeq(dst []byte, n uint64) []byte {
	s := strconv.AppendUint(nil, 10_000_000+n%10_000_000, 10)
	return append(dst, s[1:]...)
}

// ours appends the POST /message body of request n to dst.
func (b *peerBodies) ours(dst []byte, n uint64) []byte {
	dst = append(dst, `{"channel_id":"`...)
	dst = append(dst, b.channelID...)
	dst = append(dst, `","password":"`...)
	dst = append(dst, b.password...)
	dst = append(dst, `","title":"bench message `...)
	dst = appendSeq(dst, n)
	dst = append(dst, `","body":"monitoring alert: `...)
	dst = append(dst, b.oursPad...)
	return append(dst, `"}`...)
}

// ntfy appends ntfy's JSON publish body of request n to dst: the same
// title and text, to b.topic.
func (b *peerBodies) ntfy(dst []byte, n uint64) []byte {
	dst = append(dst, `{"topic":"`...)
	dst = append(dst, b.topic...)
	dst = append(dst, `","title":"bench message `...)
	dst = appendSeq(dst, n)
	dst = append(dst, `","message":"monitoring alert: `...)
	dst = append(dst, b.ntfyPad...)
	return append(dst, `"}`...)
}
