package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
)

// Defect 7 of issue 8: with the data directory removed while the server
// ran, SIGTERM never ended the process (Badger retries its memtable flush
// forever). Shutdown is bounded by --shutdown-timeout.
func TestShutdownIsBoundedWhenTheDataDirIsGone(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a server process")
	}
	dir := t.TempDir()
	c := startChild(t, dir, "--shutdown-timeout 2s")
	app := crashRoles(t, c.addr, dir, v1.Role_ROLE_INGESTER)[v1.Role_ROLE_INGESTER]
	ingest := (&clientFlags{addr: c.addr, token: app}).ingest()
	batch := []*v1.Span{benchSpan(1, "before the directory went away"), benchSpan(2, "x")}
	if _, err := ingest.AppendSpans(context.Background(), connect.NewRequest(&v1.AppendSpansRequest{Spans: batch})); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- c.wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("exit after a shutdown that could not close the ledger = %v, want a non-zero exit", err)
		}
		t.Logf("exited in %s: %v", time.Since(start).Round(10*time.Millisecond), err)
	case <-time.After(20 * time.Second):
		c.cmd.Process.Kill()
		t.Fatalf("the server did not exit within 20s of SIGTERM (shutdown timeout 2s); log:\n%s", c.log)
	}
	if !strings.Contains(c.log.String(), "did not close within the shutdown timeout") {
		t.Errorf("the log does not say the ledger did not close:\n%s", c.log)
	}
}
