package main

import (
	"context"
	"log/slog"
	"net"
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
	go func() { done <- serve(ctx, c, log) }()
	for i := 0; i < 250; i++ {
		if conn, err := net.Dial("tcp", addr); err == nil {
			conn.Close()
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return addr, func() error {
		cancel()
		return <-done
	}
}
