//go:build linux

package ledger

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of the given size, or skips the test where
// this sandbox does not allow it.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small filesystem here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// Defect 7 of issue 8: on a small filesystem the server died with SIGBUS
// inside Badger's value-log write. With a reserve, appends are refused
// before the disk fills, and resume once space returns; nothing
// acknowledged is lost.
func TestDiskReserveOnSmallFilesystem(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a filesystem")
	}
	ctx := context.Background()
	fs := mountTmpfs(t, "160m")
	dir := filepath.Join(fs, "data")
	keys := testKeys(t, dir)
	const reserve = 48 << 20
	l, err := Open(ctx, Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour, MinFreeBytes: reserve})
	if err != nil {
		t.Fatal(err)
	}
	// Leave a little above the reserve free.
	free, err := freeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(fs, "filler")
	if err := os.WriteFile(filler, make([]byte, free-reserve-8<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	var acked []Receipt
	refused := false
	for n := 0; n < 200 && !refused; n++ {
		recs := spanBatch(n, 100, 4096)
		rs, err := l.Append(ctx, "default", recs)
		switch {
		case err == nil:
			acked = append(acked, rs...)
		case errors.Is(err, ErrNoSpace):
			refused = true
		default:
			t.Fatalf("Append near a full disk = %v, want success or ErrNoSpace", err)
		}
		time.Sleep(spaceInterval / 4)
	}
	if !refused {
		t.Fatal("appends were never refused as the disk filled")
	}
	if h := l.Health(); !h.LowSpace || h.OK() {
		t.Errorf("Health() below the reserve = %+v", h)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(spaceInterval + 50*time.Millisecond)
	rs, err := l.Append(ctx, "default", spanBatch(1000, 10, 4096))
	if err != nil {
		t.Fatalf("Append after space returned = %v", err)
	}
	acked = append(acked, rs...)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir)
	defer l.Close()
	for _, r := range acked {
		if _, err := l.GetEntry(ctx, "default", r.Index); err != nil {
			t.Fatalf("acknowledged entry %d after restart: %v", r.Index, err)
		}
	}
	t.Logf("%d spans acknowledged, then refused below the reserve", len(acked))
}
