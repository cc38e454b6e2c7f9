package main

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"
)

// startServe runs serve in-process on a free loopback port and returns its
// address and a stop function that shuts it down gracefully and returns
// serve's error.
func startServe(t *testing.T, c serveConfig) (addr string, stop func() error) {
	t.Helper()
	return startServeLog(t, c, slog.New(slog.DiscardHandler))
}

// startServeLog is startServe logging to log.
func startServeLog(t *testing.T, c serveConfig, log *slog.Logger) (addr string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	c.Listen = addr
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = 4 << 20
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Second
	}
	if c.ShutdownTimeout == 0 {
		// Generous: on a loaded machine Badger's close (a memtable flush
		// and its fsyncs) took more than 5 s. Tests of the timeout itself
		// set their own.
		c.ShutdownTimeout = 30 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		done <- serve(ctx, c, slog.New(&readyHandler{Handler: log.Handler(), ready: ready, once: new(sync.Once)}))
	}()
	// The port is claimed before the data directory is opened: the server
	// is ready when it logs "serving", not when its port accepts.
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatalf("serve did not start within 2 minutes")
	}
	return addr, func() error {
		cancel()
		return <-done
	}
}

// readyHandler passes records on to Handler and closes ready at the
// first "serving" record: the server serves its main port.
type readyHandler struct {
	slog.Handler
	ready chan struct{}
	once  *sync.Once
}

func (h *readyHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "serving" {
		h.once.Do(func() { close(h.ready) })
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *readyHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *readyHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &readyHandler{Handler: h.Handler.WithAttrs(as), ready: h.ready, once: h.once}
}

func (h *readyHandler) WithGroup(name string) slog.Handler {
	return &readyHandler{Handler: h.Handler.WithGroup(name), ready: h.ready, once: h.once}
}
