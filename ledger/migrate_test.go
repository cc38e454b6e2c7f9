package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// rawDB opens one of a data directory's databases (KeyDir, LogDir) as it
// is, without checking or migrating its format.
func rawDB(t *testing.T, dir, sub string) *badger.DB {
	t.Helper()
	db, err := openDB(filepath.Join(dir, sub), deriveKey(testKeys(t, dir).Master, infoBadger), slog.New(slog.DiscardHandler), func(*badger.DB) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func rawKeyDB(t *testing.T, dir string) *badger.DB { return rawDB(t, dir, KeyDir) }

func rawLogDB(t *testing.T, dir string) *badger.DB { return rawDB(t, dir, LogDir) }

// countAllVersions counts every version, deleted ones too, of the keys
// under the prefixes.
func countAllVersions(t *testing.T, db *badger.DB, prefixes ...[]byte) int {
	t.Helper()
	n := 0
	db.View(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, Prefix: p})
			for it.Rewind(); it.Valid(); it.Next() {
				n++
			}
			it.Close()
		}
		return nil
	})
	return n
}

// appendPayloads appends n spans of four subjects (none for those
// noSubject picks) and returns their payloads, index by index.
func appendPayloads(t *testing.T, l *Ledger, n int, noSubject func(int) bool) []string {
	t.Helper()
	var want []string
	for i := 0; i < n; i++ {
		r := subjectSpan(i, fmt.Sprint("subject-", i%4), fmt.Sprint("payload ", i))
		if noSubject(i) {
			r.Subject = ""
		}
		mustAppend(t, l, "default", r)
		want = append(want, string(r.Payload))
	}
	return want
}

// checkMigrated checks that entry i of a reopened ledger reads want[i],
// appends one more span and returns want with its payload.
func checkMigrated(t *testing.T, l *Ledger, round int, want []string) []string {
	t.Helper()
	for i, w := range want {
		e, err := l.GetEntry(context.Background(), "default", uint64(i))
		if err != nil || e.Erased || string(e.Payload) != w {
			t.Fatalf("round %d: entry %d after migration = %+v, %v", round, i, e, err)
		}
	}
	mustAppend(t, l, "default", subjectSpan(100+round, "subject-1", "after"))
	return append(want, "after")
}

// writeV1 rewrites a format-2 key database in the format-1 layout, as the
// previous build wrote it: material under the key id followed by the
// format-1 scope key, scopes indexed subject first.
func writeV1(t *testing.T, db *badger.DB) int {
	t.Helper()
	n := 0
	err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsKeyMaterial}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k, err := parseKeyMaterialKey(it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			wrapped, _ := it.Item().ValueCopy(nil)
			v1scope := binary.BigEndian.AppendUint32([]byte{nsKeyScopeV1}, k.Tenant)
			v1scope = append(v1scope, k.Pseudonym[:]...)
			v1scope = binary.BigEndian.AppendUint32(v1scope, k.Day)
			v1scope = append(v1scope, k.Class...)
			if err := txn.Set(append([]byte{nsDataKeyV1}, k.ID[:]...), append(wrapped, v1scope...)); err != nil {
				return err
			}
			if err := txn.Set(v1scope, k.ID[:]); err != nil {
				return err
			}
			n++
		}
		return txn.Set(metaFormat, binary.BigEndian.AppendUint32(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropPrefix([]byte{nsKeyMaterial}, []byte{nsKeyLocation}, []byte{nsKeyScope}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A data directory of the previous key layout (format 1) is migrated at
// open: every payload reads as before, no format-1 record is left in any
// version, and the migration is idempotent.
func TestMigrateKeysV1(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	want := appendPayloads(t, l, 12, func(i int) bool { return i%5 == 0 })
	l.Close()
	db := rawKeyDB(t, dir)
	n := writeV1(t, db)
	db.Close()
	if n < 4 {
		t.Fatalf("only %d keys written in the old layout", n)
	}

	for round := 0; round < 2; round++ {
		l = openTest(t, dir)
		want = checkMigrated(t, l, round, want)
		l.Close()
		db = rawKeyDB(t, dir)
		if v, _ := readFormat(db); v != keyFormatVersion {
			t.Errorf("round %d: key database format %d, want %d", round, v, keyFormatVersion)
		}
		if c := countAllVersions(t, db, []byte{nsKeyScopeV1}, []byte{nsDataKeyV1}); c != 0 {
			t.Errorf("round %d: %d format-1 records (all versions) left after the migration", round, c)
		}
		db.Close()
	}
}

// Destroying an expiry bucket removes every version of its keys' material
// from the key store's files; the other bucket's keys stay.
func TestShredBucketIsPhysical(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	for i := 0; i < 20; i++ {
		r := subjectSpan(i, fmt.Sprint("s", i), "old")
		r.RetentionClass = "short"
		mustAppend(t, l, "default", r)
	}
	keep := mustAppend(t, l, "default", subjectSpan(50, "s1", "kept"))
	buckets, err := l.Buckets(ctx, "default")
	if err != nil || len(buckets) != 2 {
		t.Fatalf("Buckets() = %v, %v; want two", buckets, err)
	}
	var short Bucket
	for _, b := range buckets {
		if b.Class == "short" {
			short = b
		}
	}
	entries, err := l.RetireBuckets(ctx, "default", []Bucket{short})
	if err != nil || len(entries) != 20 {
		t.Fatalf("RetireBuckets() = %d entries, %v; want 20", len(entries), err)
	}
	erase := map[uint64]bool{}
	for _, e := range entries {
		erase[e.Index] = true
	}
	erased, err := l.Shred(ctx, "default", nil, []Bucket{short}, erase)
	if err != nil || len(erased) != 20 {
		t.Fatalf("Shred(bucket) = %d, %v", len(erased), err)
	}
	if e, err := l.GetEntry(ctx, "default", keep[0].Index); err != nil || e.Erased {
		t.Errorf("entry of the other bucket: %+v, %v", e, err)
	}
	l.Close()
	db := rawKeyDB(t, dir)
	defer db.Close()
	if c := countAllVersions(t, db, bucketPrefix(nsKeyMaterial, short)); c != 0 {
		t.Errorf("%d versions of destroyed key material left in the key store", c)
	}
	if c := countAllVersions(t, db, []byte{nsKeyMaterial}); c != 1 {
		t.Errorf("%d key material records left, want the other bucket's one", c)
	}
}

// writeLogV1 rewrites a log database in the format-1 layout, as the
// build before format 2 wrote it: each header and each stored tree hash
// (leaf hashes included) under a key of its own, a key per index term
// and entry. It returns the number of entries.
func writeLogV1(t *testing.T, db *badger.DB) int {
	t.Helper()
	writeTermsV2(t, db)
	n := 0
	err := db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsEntry}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().KeyCopy(nil)
			tenant, index := binary.BigEndian.Uint32(key[1:]), binary.BigEndian.Uint64(key[5:])
			v, _ := it.Item().ValueCopy(nil)
			hb, hashes, err := splitEntryRecord(index, v)
			if err != nil {
				return err
			}
			if err := txn.Set(tenantIndexKey(nsHeaderV1, tenant, index), hb); err != nil {
				return err
			}
			leaf := format.LeafHash(hb)
			stored := append(leaf[:], hashes...)
			for level := 0; level*tlog.HashSize < len(stored); level++ {
				x := tlog.StoredHashIndex(level, int64(index+1)>>level-1)
				if err := txn.Set(tenantIndexKey(nsHashV1, tenant, uint64(x)), stored[level*tlog.HashSize:(level+1)*tlog.HashSize]); err != nil {
					return err
				}
			}
			n++
		}
		return txn.Set(metaFormat, binary.BigEndian.AppendUint32(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.DropPrefix([]byte{nsEntry}); err != nil {
		t.Fatal(err)
	}
	return n
}

// A log database of the previous layout (format 1: a key per header and
// per tree hash) is migrated at open: entries, proofs against the earlier
// checkpoint and appends work as before, verify-log finds nothing, no
// format-1 record is left in any version, and the migration is idempotent
// (a crash after its first step leaves format 1 and both layouts: the next
// open finishes it).
func TestMigrateLogV1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	want := appendPayloads(t, l, 37, func(int) bool { return false })
	old, err := l.Checkpoint(ctx, "default", true)
	if err != nil {
		t.Fatal(err)
	}
	vkey := l.VerifierKey()
	l.Close()
	db := rawLogDB(t, dir)
	if n := writeLogV1(t, db); n < 37 {
		t.Fatalf("only %d entries written in the old layout", n)
	}
	db.Close()
	if _, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey); !errors.Is(err, ErrUnknownFormat) || !strings.Contains(err.Error(), "start the server") {
		t.Errorf("VerifyDir(format 1) = %v, want ErrUnknownFormat saying how to migrate", err)
	}

	for round := 0; round < 3; round++ {
		l = openTest(t, dir)
		want = checkMigrated(t, l, round, want)
		cp, err := l.Checkpoint(ctx, "default", true)
		if err != nil {
			t.Fatalf("round %d: Checkpoint() = %v", round, err)
		}
		p, _, err := l.ConsistencyProof(ctx, "default", old.Size, cp.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, int64(cp.Size), cp.Root, int64(old.Size), old.Root); err != nil {
			t.Errorf("round %d: checkpoint before the migration and after inconsistent: %v", round, err)
		}
		for _, i := range []uint64{0, 7, 31, 36} {
			proof, leaf, _, err := l.InclusionProof(ctx, "default", i, old.Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(proof, int64(old.Size), old.Root, int64(i), leaf); err != nil {
				t.Errorf("round %d: inclusion of %d in the checkpoint before the migration: %v", round, i, err)
			}
		}
		l.Close()
		res, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if len(r.Problems) > 0 {
				t.Fatalf("round %d: VerifyDir = %v", round, r.Problems)
			}
		}
		db = rawLogDB(t, dir)
		if v, _ := readFormat(db); v != logFormatVersion {
			t.Errorf("round %d: log database format %d, want %d", round, v, logFormatVersion)
		}
		if c := countAllVersions(t, db, []byte{nsHeaderV1}, []byte{nsHashV1}); c != 0 {
			t.Errorf("round %d: %d format-1 records (all versions) left after the migration", round, c)
		}
		if round == 0 {
			// As if the next migration had crashed after writing the entry
			// records: format 1, old and new layouts both present.
			writeLogV1(t, db)
			if err := db.Update(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsHeaderV1}})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					k := it.Item().Key()
					if err := txn.Set(entryKey(binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:])), []byte("stale")); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
	}
}

// A format-1 key database whose keys were all deleted (destroyed by the
// previous build) still holds their material in older versions until a
// compaction. The migration's DropPrefix must drop those too: Badger's
// DropPrefix skips a prefix with no live key.
func TestMigrateKeysV1DropsDeletedRecords(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	for i := 0; i < 3; i++ {
		mustAppend(t, l, "default", subjectSpan(i, fmt.Sprint("subject-", i), "p"))
	}
	l.Close()
	db := rawKeyDB(t, dir)
	writeV1(t, db)
	// The previous build destroyed them all: Delete, no compaction since.
	if err := db.Update(func(txn *badger.Txn) error {
		for _, p := range [][]byte{{nsDataKeyV1}, {nsKeyScopeV1}} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
			var keys [][]byte
			for it.Rewind(); it.Valid(); it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if c := countAllVersions(t, db, []byte{nsDataKeyV1}); c == 0 {
		t.Fatal("no version of the deleted format-1 keys to begin with")
	}
	// A crash after the migration set its placeholders, before its drop.
	if err := db.Update(func(txn *badger.Txn) error {
		return errors.Join(txn.Set([]byte{nsKeyScopeV1}, nil), txn.Set([]byte{nsDataKeyV1}, nil))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	openTest(t, dir).Close() // migrates
	db = rawKeyDB(t, dir)
	defer db.Close()
	if c := countAllVersions(t, db, []byte{nsKeyScopeV1}, []byte{nsDataKeyV1}); c != 0 {
		t.Errorf("%d versions of deleted format-1 records (key material among them) left after the migration", c)
	}
}

// Every data directory an earlier build may have left is opened, each
// migration finished where a kill stopped it: a format-1 log with the
// day marks (0x1c) of the build that seals by day, or without them (a
// build before), beside a key database of format 2 or 1. After the open
// both databases are of the current formats with no format-1 record
// left, every entry reads as before, the index terms find the entries
// they found before (formats 1 and 2 have a key per term and entry), the day marks are kept (or set to
// the tree size where there were none, so the sweep still reads a day
// either side for those entries), a bucket's retirement lists every entry
// under it, and verify-log finds nothing.
func TestMigrateEveryEarlierFormat(t *testing.T) {
	ctx := context.Background()
	const n = 37
	for _, tc := range []struct {
		name     string
		dayMarks bool // the format-1 log has 0x1c marks
		logV2    bool // a format-2 log (index terms a key per entry) instead of format 1
		keysV1   bool
		killed   func(t *testing.T, dir string) // what a kill during the first open left
	}{
		{name: "log v2, keys v2", logV2: true, dayMarks: true},
		{name: "log v1 with day marks, keys v2", dayMarks: true},
		{name: "log v1 without day marks, keys v1", keysV1: true},
		{name: "killed after the log's migration, before the keys'", keysV1: true, killed: func(t *testing.T, dir string) {
			db, err := openDB(filepath.Join(dir, LogDir), deriveKey(testKeys(t, dir).Master, infoBadger), slog.New(slog.DiscardHandler), func(db *badger.DB) error { return checkFormat(db, slog.New(slog.DiscardHandler)) })
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}},
		{name: "killed after the log migration's placeholders, before its drop", dayMarks: true, keysV1: true, killed: func(t *testing.T, dir string) {
			db := rawLogDB(t, dir)
			defer db.Close()
			// Step 1 done (entry records written), placeholders set.
			if err := db.Update(func(txn *badger.Txn) error {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsHeaderV1}, PrefetchValues: true})
				defer it.Close()
				for it.Rewind(); it.Valid(); it.Next() {
					k := it.Item().Key()
					tenant, index := binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:])
					hb, _ := it.Item().ValueCopy(nil)
					var hs []byte
					for level := 1; level <= completedLevels(index); level++ {
						item, err := txn.Get(tenantIndexKey(nsHashV1, tenant, uint64(tlog.StoredHashIndex(level, int64(index+1)>>level-1))))
						if err != nil {
							return err
						}
						h, _ := item.ValueCopy(nil)
						hs = append(hs, h...)
					}
					if err := txn.Set(entryKey(tenant, index), append(hb, hs...)); err != nil {
						return err
					}
				}
				return errors.Join(txn.Set([]byte{nsHeaderV1}, nil), txn.Set([]byte{nsHashV1}, nil))
			}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			want := appendPayloads(t, l, n, func(i int) bool { return i%5 == 0 })
			vkey := l.VerifierKey()
			l.Close()
			db := rawLogDB(t, dir)
			if tc.logV2 {
				writeTermsV2(t, db)
				if err := db.Update(func(txn *badger.Txn) error {
					return txn.Set(metaFormat, binary.BigEndian.AppendUint32(nil, 2))
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				writeLogV1(t, db)
			}
			if !tc.dayMarks {
				if err := db.Update(func(txn *badger.Txn) error {
					for _, id := range []uint32{1, 2} {
						if err := txn.Delete(tenantKey(nsDaySealed, id)); err != nil {
							return err
						}
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			db.Close()
			if tc.keysV1 {
				db := rawKeyDB(t, dir)
				writeV1(t, db)
				db.Close()
			}
			if tc.killed != nil {
				tc.killed(t, dir)
			}
			if tc.logV2 {
				// verify-log reads format 2 as it is, read-only.
				res, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey)
				if err != nil || len(res) == 0 || len(res[0].Problems) > 0 {
					t.Errorf("VerifyDir(format 2) = %+v, %v", res, err)
				}
			}

			l = openTest(t, dir)
			want = checkMigrated(t, l, 0, want)
			for k := range 4 {
				var wantIdx []uint64
				for i := range n {
					if i%4 == k && i%5 != 0 {
						wantIdx = append(wantIdx, uint64(i))
					}
				}
				if k == 1 {
					wantIdx = append(wantIdx, n) // checkMigrated's append
				}
				got, err := l.EntryIndexes(ctx, "default", Term{Field: SubjectField, Value: []byte(fmt.Sprint("subject-", k))})
				if err != nil || !slices.Equal(got, wantIdx) {
					t.Errorf("EntryIndexes(subject-%d) after migration = %v, %v; want %v", k, got, err, wantIdx)
				}
			}
			wantMark := uint64(0)
			if !tc.dayMarks {
				wantMark = n
			}
			l.stateMu.RLock()
			mark := l.daySealed[1]
			l.stateMu.RUnlock()
			if mark != wantMark {
				t.Errorf("day mark of the default tenant = %d, want %d", mark, wantMark)
			}
			buckets, err := l.Buckets(ctx, "default")
			if err != nil {
				t.Fatal(err)
			}
			under, err := l.RetireBuckets(ctx, "default", buckets)
			if err != nil {
				t.Fatal(err)
			}
			if len(under) != len(want) {
				t.Errorf("RetireBuckets(every bucket) lists %d entries, want all %d", len(under), len(want))
			}
			l.Close()

			for sub, v := range map[string]uint32{LogDir: logFormatVersion, KeyDir: keyFormatVersion} {
				db := rawDB(t, dir, sub)
				if got, _ := readFormat(db); got != v {
					t.Errorf("%s: format %d, want %d", sub, got, v)
				}
				if c := countAllVersions(t, db, []byte{nsHeaderV1}, []byte{nsHashV1}, []byte{nsKeyScopeV1}, []byte{nsDataKeyV1}); c != 0 {
					t.Errorf("%s: %d format-1 records (all versions) left", sub, c)
				}
				db.Close()
			}
			res, err := VerifyDir(ctx, dir, testKeys(t, dir).Master, vkey)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if len(r.Problems) > 0 {
					t.Errorf("VerifyDir(%s) = %v", r.Tenant, r.Problems)
				}
			}
		})
	}
}
