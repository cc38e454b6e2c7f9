package ledger

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

func rawKeyDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := openDB(filepath.Join(dir, KeyDir), deriveKey(testKeys(t, dir).Master, infoBadger), slog.New(slog.DiscardHandler), func(*badger.DB) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return db
}

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
	ctx := context.Background()
	dir := t.TempDir()
	l := openTest(t, dir)
	var want []string
	for i := 0; i < 12; i++ {
		r := subjectSpan(i, fmt.Sprint("subject-", i%4), fmt.Sprint("payload ", i))
		if i%5 == 0 {
			r.Subject = ""
		}
		mustAppend(t, l, "default", r)
		want = append(want, string(r.Payload))
	}
	l.Close()
	db := rawKeyDB(t, dir)
	n := writeV1(t, db)
	db.Close()
	if n < 4 {
		t.Fatalf("only %d keys written in the old layout", n)
	}

	for round := 0; round < 2; round++ {
		l = openTest(t, dir)
		for i, w := range want {
			e, err := l.GetEntry(ctx, "default", uint64(i))
			if err != nil || e.Erased || string(e.Payload) != w {
				t.Fatalf("round %d: entry %d after migration = %+v, %v", round, i, e, err)
			}
		}
		mustAppend(t, l, "default", subjectSpan(100+round, "subject-1", "after"))
		want = append(want, "after")
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
