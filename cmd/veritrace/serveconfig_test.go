package main

import (
	"strings"
	"testing"
	"time"

	"github.com/veritrace/veritrace/cmd/veritrace/internal/rpc"
)

// TestServeMaxQueueWait: --max-queue-wait reaches the API as the flag
// means it (README, "Operating it"): by default 1 minute; 0, as long as
// the client waits; any other duration as given; a negative one refused.
func TestServeMaxQueueWait(t *testing.T) {
	data := t.TempDir()
	for _, tc := range []struct {
		args []string
		want time.Duration
	}{
		{nil, rpc.DefaultMaxQueueWait},
		{[]string{"--max-queue-wait", "0"}, 0},
		{[]string{"--max-queue-wait", "90s"}, 90 * time.Second},
	} {
		args := append([]string{"--data", data}, tc.args...)
		c, err := parseServe(args)
		if err != nil {
			t.Fatalf("parseServe(%q) = %v", args, err)
		}
		if got := c.rpcOptions().QueueWait(); got != tc.want {
			t.Errorf("parseServe(%q): the API's queue wait = %s, want %s", args, got, tc.want)
		}
	}
	if rpc.DefaultMaxQueueWait != time.Minute {
		t.Errorf("rpc.DefaultMaxQueueWait = %s, README says 1 minute", rpc.DefaultMaxQueueWait)
	}
	args := []string{"--data", data, "--max-queue-wait", "-1s"}
	if _, err := parseServe(args); err == nil || !strings.Contains(err.Error(), "--max-queue-wait") {
		t.Errorf("parseServe(%q) = %v, want an error naming --max-queue-wait", args, err)
	}
}

// TestServeOTLPSlotFlags: --otlp-max-concurrent defaults to 64 (README,
// "OTLP export slots") and --otlp-max-key-concurrent to 0 (half of it);
// a count below 1, or a negative key share, is refused naming its flag.
func TestServeOTLPSlotFlags(t *testing.T) {
	data := t.TempDir()
	c, err := parseServe([]string{"--data", data})
	if err != nil {
		t.Fatal(err)
	}
	if c.OTLPMaxConcurrent != 64 || c.OTLPMaxKeyConcurrent != 0 {
		t.Errorf("defaults: --otlp-max-concurrent %d, --otlp-max-key-concurrent %d; want 64 and 0 (half)", c.OTLPMaxConcurrent, c.OTLPMaxKeyConcurrent)
	}
	args := []string{"--data", data, "--otlp-max-concurrent", "8", "--otlp-max-key-concurrent", "3"}
	if c, err = parseServe(args); err != nil || c.OTLPMaxConcurrent != 8 || c.OTLPMaxKeyConcurrent != 3 {
		t.Errorf("parseServe(%q) = %d, %d, %v; want 8, 3", args, c.OTLPMaxConcurrent, c.OTLPMaxKeyConcurrent, err)
	}
	for _, bad := range [][]string{{"--otlp-max-concurrent", "0"}, {"--otlp-max-key-concurrent", "-1"}} {
		args := append([]string{"--data", data}, bad...)
		if _, err := parseServe(args); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("parseServe(%q) = %v, want an error naming %s", args, err, bad[0])
		}
	}
}
