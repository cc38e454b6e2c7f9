//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestKeyFileIsBounded: the verifier key file comes to the auditor by an
// untrusted channel; a "log.pub" that is a pipe or a huge file is refused
// after a few KiB (a key is about a hundred bytes), not read whole.
func TestKeyFileIsBounded(t *testing.T) {
	const dir = "../../audit/bundle/testdata/"
	fifo := filepath.Join(t.TempDir(), "log.pub")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	const offered = 32 << 20
	sent := make(chan int)
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			sent <- 0
			return
		}
		chunk := []byte(strings.Repeat("k", 64<<10))
		n := 0
		for n < offered {
			w, err := f.Write(chunk)
			n += w
			if err != nil {
				break
			}
		}
		f.Close()
		sent <- n
	}()
	var out strings.Builder
	code := run([]string{"receipt", dir + "golden-receipt.txt", "--key", fifo}, &out, &out)
	// The verifier closed the pipe: the writer's next write fails.
	n := <-sent
	if code != 2 {
		t.Errorf("exit code %d for a malformed key, want 2:\n%s", code, out.String())
	}
	if n > 1<<20 {
		t.Errorf("veritrace-verify receipt read %d MiB of a key file before refusing it; want it to stop after a few KiB", n>>20)
	}
}
