package httpapi

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v5"
)

// TestAReadAnswerNobodyReadsIsDropped: a client that asks for a large
// answer and does not read it is dropped once the answer's write deadline
// passes (it held the page and a goroutine for as long as its connection
// stayed open); and the deadline, the connection's, is cleared after each
// answer, so a keep-alive connection's next request, later than it, is
// answered.
func TestAReadAnswerNobodyReadsIsDropped(t *testing.T) {
	defer func(d, m time.Duration) { answerWriteTimeout, answerWritePerMiB = d, m }(answerWriteTimeout, answerWritePerMiB)
	answerWriteTimeout, answerWritePerMiB = 200*time.Millisecond, 0
	big := jsontext.Value(`"` + string(bytes.Repeat([]byte("x"), 64<<20)) + `"`) // more than any socket buffer holds
	ended := make(chan error, 1)
	e := echo.New()
	e.GET("/big", func(c *echo.Context) error { err := writeData(c, big); ended <- err; return err })
	e.GET("/small", func(c *echo.Context) error { return writeData(c, jsontext.Value(`{"a":1}`)) })
	// Another route's answer, written with no deadline of its own.
	e.GET("/plain", func(c *echo.Context) error { return c.String(http.StatusOK, `{"success":true,"data":{"a":1}}`) })
	e.GET("/small-unread", func(c *echo.Context) error {
		return writeData(c, jsontext.Value(`"`+string(bytes.Repeat([]byte("y"), 3000))+`"`))
	})
	srv := httptest.NewServer(e)
	defer srv.Close()

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// Not read: the handler's write must give up.
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("64 MiB written to a client that read none of it")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the answer's write still waits for a client that does not read")
	}

	// Small answers, pipelined and never read: each is flushed within its
	// deadline, so once the socket's buffers are full one fails and the
	// server closes the connection, which the client's writes then see
	// (the server's own flush after the handler had no deadline: it
	// waited for ever, and so did the client's writes).
	pc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		req := bytes.Repeat([]byte("GET /small-unread HTTP/1.1\r\nHost: x\r\n\r\n"), 100)
		for {
			if _, err := pc.Write(req); err != nil {
				return
			}
		}
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("small answers written for ever to a client that reads none of them")
	}

	// Keep-alive: two requests on one connection, the second after the
	// first answer's deadline would have passed.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i, path := range []string{"/small", "/plain"} {
		if i == 1 {
			time.Sleep(3 * answerWriteTimeout)
		}
		if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d on the kept-alive connection: %v", i+1, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != `{"success":true,"data":{"a":1}}` {
			t.Fatalf("request %d: %q, %v", i+1, body, err)
		}
	}
}
