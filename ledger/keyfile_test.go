package ledger

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// A new data directory's files survive a crash once made: each is synced
// (written whole to a temporary file, synced, then linked into place) and
// the directory is synced after each is created, and after the creating
// marker is removed. Without the directory's sync, a crash could keep a
// later file (ledger/) and lose an earlier one (master.key).
func TestCreationSyncsTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	var synced []string // files present at each sync of dir
	defer func(f func(string) error) { syncDir = f }(syncDir)
	syncDir = func(d string) error {
		if d == dir {
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			synced = append(synced, strings.Join(names, " "))
		}
		return syncDirectory(d)
	}
	keys, created, err := LoadOrCreateKeys(KeyPaths{Dir: dir})
	if err != nil || !created {
		t.Fatalf("LoadOrCreateKeys(new directory) = %v, %v", created, err)
	}
	l, err := Open(context.Background(), Options{Dir: dir, Keys: keys, Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	want := []string{ // the names present at each sync, in ReadDir's order
		"creating",
		"creating master.key",
		"creating log.key master.key",
		"creating log.key log.pub master.key",
		"keys ledger log.key log.pub master.key", // the marker removed
	}
	for i := range want {
		got := "(none)"
		if i < len(synced) {
			got = synced[i]
		}
		if got != want[i] {
			t.Errorf("sync %d of the data directory with %q, want %q", i, got, want[i])
		}
	}
	if len(synced) != len(want) {
		t.Errorf("syncs of the data directory: %q, want %q", synced, want)
	}
}
