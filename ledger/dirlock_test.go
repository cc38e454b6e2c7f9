package ledger

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLockedNotMatchedOnPath: ErrLocked was recognised by Badger's
// text "Cannot acquire directory lock" anywhere in the error, and
// Badger's errors quote the directory's path: a data directory whose path
// holds those words (an operator's name, or any path an error quotes)
// and that fails to open for another reason, here a MANIFEST that is a
// directory, is reported as held by another process. The same text also
// covers every errno of flock (ENOLCK on a filesystem without locks,
// EINTR), not only EWOULDBLOCK.
func TestLockedNotMatchedOnPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Cannot acquire directory lock")
	l := openTest(t, dir)
	keys := testKeys(t, dir)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(dir, LogDir, "MANIFEST")
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(manifest, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	t.Logf("Open() = %v", err)
	if err == nil {
		t.Fatal("Open() of a directory with a broken MANIFEST succeeded")
	}
	if errors.Is(err, ErrLocked) {
		t.Errorf("Open() = %v: no other process holds the directory, yet ErrLocked", err)
	}
}

// TestLockedWhenHeld: a data directory another open holds is refused
// with ErrLocked, and the path is named.
func TestLockedWhenHeld(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	_, err := Open(context.Background(), Options{Dir: dir, Keys: testKeys(t, dir), Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open() of a held directory = %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("Open() = %v: the directory is not named", err)
	}
}
