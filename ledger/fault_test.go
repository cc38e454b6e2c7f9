//go:build linux

package ledger

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A read of a memory-mapped file that was truncated underneath raises
// SIGBUS; guardFaults turns it into an error instead of a crash.
func TestGuardFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mapped")
	if err := os.WriteFile(path, make([]byte, 1<<16), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, 1<<16, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Skip(err)
	}
	defer syscall.Munmap(m)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	var sink byte
	err = guardFaults(func() error {
		sink = m[1<<15]
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "memory fault") {
		t.Fatalf("guardFaults(read past a truncated mapping) = %v, %d; want a memory fault error", err, sink)
	}
}

// VerifyDir opens the log read-only: it changes nothing in the directory,
// even right after a crash left a memtable to replay.
func TestVerifyDirChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	mustAppend(t, l, "default", span(1, "a"), span(2, "b"))
	vkey, master := l.VerifierKey(), testKeys(t, dir).Master
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	before := dirListing(t, dir)
	res, err := VerifyDir(ctx, dir, master, vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if len(r.Problems) > 0 {
			t.Errorf("VerifyDir: %v", r.Problems)
		}
	}
	if after := dirListing(t, dir); after != before {
		t.Errorf("VerifyDir changed the directory:\n%s\n----\n%s", before, after)
	}
	if _, err := VerifyDir(ctx, filepath.Join(dir, "nope"), master, vkey); err == nil || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("VerifyDir(missing dir) = %v", err)
	}
}

func dirListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(path + " " + fi.Mode().String() + " " + fi.ModTime().String() + " " + string(rune('0'+fi.Size()%10)) + "\n")
		return nil
	})
	return b.String()
}

// VerifyDir, read-only, refuses a directory as a crash left it (a copy
// taken while the ledger was open, its memtable still in the write-ahead
// log) with an error saying how to recover it, and reads it once a start
// has recovered it.
func TestVerifyDirAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close()
	mustAppend(t, l, "default", span(1, "a"), span(2, "b"))
	snap := t.TempDir()
	if out, err := exec.Command("cp", "-a", dir+"/.", snap).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	_, err := VerifyDir(ctx, snap, testKeys(t, dir).Master, l.VerifierKey())
	if !errors.Is(err, ErrNotClosedCleanly) || !strings.Contains(err.Error(), "start the server on it once") {
		t.Fatalf("VerifyDir(crashed copy) = %v, want ErrNotClosedCleanly", err)
	}
	openTest(t, snap).Close()
	res, err := VerifyDir(ctx, snap, testKeys(t, dir).Master, l.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Size != 2 || len(res[0].Problems) > 0 {
		t.Errorf("VerifyDir after a crash = %+v", res[0])
	}
}

// A kill between Badger creating a new memtable (or value-log) file and
// sizing it leaves the file empty; Badger v4 then refuses to open the
// directory ("while opening memtables ... Create a new file", upstream
// issue dgraph-io/badger#2207), which the crash test met after a kill
// during an erasure. Open removes such empty files (they hold nothing)
// and starts; verify-log, which changes nothing, says to start the server
// once.
func TestOpenAfterCrashLeftEmptyLogFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	want := mustAppend(t, l, "default", span(1, "before the crash"))
	vkey := l.VerifierKey()
	l.Close()
	empty := []string{
		filepath.Join(dir, LogDir, "00099.mem"), filepath.Join(dir, KeyDir, "00099.mem"),
		filepath.Join(dir, LogDir, "000099.vlog"), filepath.Join(dir, KeyDir, "000099.vlog"),
	}
	for _, f := range empty {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	before := dirListing(t, dir)
	if _, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey); !errors.Is(err, ErrNotClosedCleanly) || !strings.Contains(err.Error(), "start the server on it once") {
		t.Errorf("VerifyDir(empty log files) = %v, want ErrNotClosedCleanly", err)
	}
	if after := dirListing(t, dir); after != before {
		t.Errorf("VerifyDir changed the directory:\n%s\n----\n%s", before, after)
	}
	l, err := Open(ctx, Options{Dir: dir, Keys: testKeys(t, dir), Logger: slog.New(slog.DiscardHandler), CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatalf("Open(after a crash left empty log files) = %v", err)
	}
	e, err := l.GetEntry(ctx, "default", want[0].Index)
	if err != nil || string(e.Payload) != "before the crash" {
		t.Errorf("GetEntry(%d) = %+v, %v", want[0].Index, e, err)
	}
	mustAppend(t, l, "default", span(2, "after"))
	l.Close()
	res, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey)
	if err != nil || len(res[0].Problems) > 0 || res[0].Size != 2 {
		t.Errorf("VerifyDir after the restart = %+v, %v", res, err)
	}
}
