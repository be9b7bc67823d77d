package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Doer sends one HTTP request: an *http.Client, or a Conn.
type Doer interface {
	Do(req *http.Request) (*http.Response, error)
}

// Conn is one worker's keep-alive HTTP/1.1 connection: requests are
// written with net/http's Request.Write and answers read with
// http.ReadResponse on the worker's goroutine, without the Transport's
// two connection goroutines and the channel hand-offs between them per
// request. The benchmarks run their load on the machine of the system
// they measure, and this halves what a request costs the load side. Not
// safe for concurrent use; plain HTTP only.
type Conn struct {
	// Timeout bounds a request and its answer (0: none).
	Timeout time.Duration

	conn net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
}

// Do sends req on the connection, dialling it first if needed, and returns
// the answer, whose body must be read and closed before the next Do. A
// request that fails on a connection used before, whose server may have
// closed it while idle, is sent once more on a new one.
func (c *Conn) Do(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return nil, fmt.Errorf("loadgen conn: scheme %q: only http", req.URL.Scheme)
	}
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx, req.URL.Host); err != nil {
				return nil, err
			}
		}
		resp, err := c.roundTrip(ctx, req)
		if err == nil {
			return resp, nil
		}
		_ = c.Close() // the request's error is what matters; the next Do redials
		if !reused || attempt > 0 || req.GetBody == nil || ctx.Err() != nil {
			return nil, err
		}
		if req.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("rewind body: %w", err)
		}
	}
}

func (c *Conn) dial(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	c.conn = conn
	c.br = bufio.NewReaderSize(conn, 16<<10)
	c.bw = bufio.NewWriterSize(conn, 16<<10)
	return nil
}

func (c *Conn) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	var deadline time.Time
	if c.Timeout > 0 {
		deadline = time.Now().Add(c.Timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	if err := c.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	// Canceling ctx fails the reads and writes in progress, as the
	// Transport's cancellation does.
	conn := c.conn
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := c.exchange(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	resp.Body = &connBody{ReadCloser: resp.Body, c: c, last: resp.Close}
	return resp, nil
}

// exchange writes req and reads the head of its answer.
func (c *Conn) exchange(req *http.Request) (*http.Response, error) {
	if err := req.Write(c.bw); err != nil {
		return nil, err
	}
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	return http.ReadResponse(c.br, req)
}

// Close closes the connection; the next Do dials a new one.
func (c *Conn) Close() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn = nil
	return err
}

// connBody is an answer's body: closing it before the end, or when the
// server asked to close, drops the connection, whose next bytes are not
// the next answer's.
type connBody struct {
	io.ReadCloser
	c    *Conn
	last bool
	eof  bool
}

func (b *connBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	return n, err
}

func (b *connBody) Close() error {
	err := b.ReadCloser.Close()
	if b.last || !b.eof || err != nil {
		_ = b.c.Close() // the body's error is returned; the next Do redials
	}
	return err
}
