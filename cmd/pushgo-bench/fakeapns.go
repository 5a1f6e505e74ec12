package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// apnsServer is the fake APNs: a minimal HTTP/2 server over TLS that does
// what APNs does for a sender (SETTINGS with 1,000 concurrent streams,
// flow control, PING, one answer per POST /3/device/{token}: 200 with the
// request's apns-id after the fake's latency) and nothing a sender does
// not need. It reads each connection's frames on one goroutine and writes
// the answers as they fall due, several to a flush.
//
// Why not net/http's server: the fake is the harness, and it shares the
// machine's two cores with the system under test. net/http serves each
// stream on a goroutine of its own through a handler, which cost about
// 100 µs of CPU per push (0.5 to 0.8 of a core at the delivery rates
// measured), so the fake, not the system, set much of the pace; both
// systems face this one alike (gorush through its CONNECT tunnel).
type apnsServer struct {
	f    *fakeProvider
	cfg  *tls.Config
	cert *x509.Certificate
	ln   *handOffListener
	url  string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newAPNsServer listens on loopback and serves f's APNs until close.
func newAPNsServer(f *fakeProvider) (*apnsServer, error) {
	cert := fakeAPNsCert()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &apnsServer{f: f, cert: leaf, ln: newHandOffListener(ln), url: "https://" + ln.Addr().String(), conns: map[net.Conn]struct{}{},
		cfg: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{http2.NextProtoTLS}}}
	s.wg.Go(s.accept)
	return s, nil
}

func (s *apnsServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			_ = s.serveConn(c)
		})
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *apnsServer) close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// apnsStream is a request being received.
type apnsStream struct {
	token, apnsID string
	known         bool  // POST /3/device/{token}: the one route
	arrived       int64 // unix ns, at its headers
	body          []byte
}

// apnsConn is one connection's writing side, shared by its reader and the
// timers of delayed answers.
type apnsConn struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
	err  error
}

// answer writes the answer of stream id, status (with apns-id for a 200),
// and flushes when flush is set.
func (w *apnsConn) answer(id uint32, status, apnsID string, flush bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	// The encoder's dynamic table follows the order of the header blocks
	// written: encode and write under one lock.
	w.hbuf.Reset()
	w.henc.WriteField(hpack.HeaderField{Name: ":status", Value: status})
	if status == "200" {
		w.henc.WriteField(hpack.HeaderField{Name: "apns-id", Value: apnsID})
	}
	w.err = w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: w.hbuf.Bytes(), EndStream: true, EndHeaders: true})
	if flush && w.err == nil {
		w.err = w.bw.Flush()
	}
}

// do runs f on the framer under the lock.
func (w *apnsConn) do(f func(fr *http2.Framer) error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = f(w.fr)
	}
}

// failed is the connection's first write error, nil while it writes.
func (w *apnsConn) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

func (w *apnsConn) flush() {
	w.do(func(*http2.Framer) error { return w.bw.Flush() })
}

// apnsWindow is the flow-control window the fake grants, per stream and
// for the connection: large, so a sender never waits for an update.
const apnsWindow = 1 << 30

var errNoH2 = errors.New("fake APNs: the client did not negotiate h2")

// serveConn serves one accepted connection until it fails or closes.
func (s *apnsServer) serveConn(raw net.Conn) error {
	c := tls.Server(raw, s.cfg)
	if err := c.Handshake(); err != nil {
		return err
	}
	if c.ConnectionState().NegotiatedProtocol != http2.NextProtoTLS {
		return errNoH2
	}
	br := bufio.NewReaderSize(c, 64<<10)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(br, preface); err != nil || string(preface) != http2.ClientPreface {
		return errors.New("fake APNs: no client preface")
	}
	w := &apnsConn{bw: bufio.NewWriterSize(c, 64<<10)}
	w.henc = hpack.NewEncoder(&w.hbuf)
	w.fr = http2.NewFramer(w.bw, br)
	w.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	w.fr.MaxHeaderListSize = 64 << 10
	w.do(func(fr *http2.Framer) error {
		if err := fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: apnsMaxStreams},
			http2.Setting{ID: http2.SettingInitialWindowSize, Val: apnsWindow}); err != nil {
			return err
		}
		return fr.WriteWindowUpdate(0, apnsWindow-65535)
	})
	w.flush()

	streams := map[uint32]*apnsStream{}
	var granted uint32 // connection window consumed since the last update
	for {
		fr, err := w.fr.ReadFrame()
		if err != nil {
			return err
		}
		switch fr := fr.(type) {
		case *http2.SettingsFrame:
			if !fr.IsAck() {
				w.do(func(f *http2.Framer) error { return f.WriteSettingsAck() })
			}
		case *http2.PingFrame:
			if !fr.IsAck() {
				w.do(func(f *http2.Framer) error { return f.WritePing(true, fr.Data) })
			}
		case *http2.MetaHeadersFrame:
			st := &apnsStream{arrived: time.Now().UnixNano()}
			path := fr.PseudoValue("path")
			st.token = strings.TrimPrefix(path, "/3/device/")
			st.known = fr.PseudoValue("method") == "POST" && st.token != path && st.token != ""
			for _, h := range fr.RegularFields() {
				if h.Name == "apns-id" {
					st.apnsID = h.Value
				}
			}
			streams[fr.StreamID] = st
			if fr.StreamEnded() {
				s.finish(w, fr.StreamID, st)
				delete(streams, fr.StreamID)
			}
		case *http2.DataFrame:
			st := streams[fr.StreamID]
			if n := fr.Header().Length; n > 0 {
				if granted += n; granted > apnsWindow/2 {
					g := granted
					w.do(func(f *http2.Framer) error { return f.WriteWindowUpdate(0, g) })
					granted = 0
				}
			}
			if st == nil {
				continue
			}
			st.body = append(st.body, fr.Data()...)
			if fr.StreamEnded() {
				s.finish(w, fr.StreamID, st)
				delete(streams, fr.StreamID)
			}
		case *http2.RSTStreamFrame:
			delete(streams, fr.StreamID)
		case *http2.GoAwayFrame:
			w.flush()
			return nil
		}
		// Flush unless a whole frame is waiting to be read: the answers of
		// a burst of requests go out together, and none waits behind a
		// read that blocks.
		if !frameBuffered(br) {
			w.flush()
		}
		if err := w.failed(); err != nil {
			return err
		}
	}
}

// finish records a complete request and answers it now or after the
// fake's latency.
func (s *apnsServer) finish(w *apnsConn, id uint32, st *apnsStream) {
	if !st.known {
		w.answer(id, "404", "", false)
		return
	}
	s.f.rec.Load().record(st.arrived, st.body, st.token)
	if d := time.Duration(s.f.latency.Load()); d > 0 {
		time.AfterFunc(d, func() { w.answer(id, "200", st.apnsID, true) })
		return
	}
	w.answer(id, "200", st.apnsID, false) // flushed by the read loop
}

// frameBuffered reports whether br holds a whole HTTP/2 frame, which the
// next read takes without blocking.
func frameBuffered(br *bufio.Reader) bool {
	n := br.Buffered()
	if n < 9 {
		return false
	}
	h, err := br.Peek(9)
	if err != nil {
		return false
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	return n >= 9+length
}
