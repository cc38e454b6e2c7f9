package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A read of a data key while it is being destroyed (GetEntry of one of its
// entries, between the cache eviction and the drop) must not put it back
// in the cache: once destroy returns, the key reads as destroyed and no
// copy of it stays in memory.
func TestDestroyedKeyIsNotCachedAgainDuringDestroy(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	mustAppend(t, l, "default", subjectSpan(1, "dave", "x"))
	keys, _ := subjectKeys(t, l, "dave")
	if len(keys) != 1 {
		t.Fatalf("dave has %d keys", len(keys))
	}
	id := keys[0].ID
	l.keys.beforeDrop = func() error { l.keys.byID(id); return nil } // a concurrent read
	if _, err := l.keys.destroy(l.quit, keys, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := l.keys.byID(id); !errors.Is(err, ErrKeyDestroyed) {
		t.Errorf("byID(destroyed key) = %v, want ErrKeyDestroyed: a read during destroy cached it again", err)
	}
}

// keyRecords counts what the key store still holds of keys: versions of
// their material, and their location and scope records.
func keyRecords(t *testing.T, dir string, keys []*KeyRef) (material, index int) {
	t.Helper()
	db := rawKeyDB(t, dir)
	defer db.Close()
	for _, k := range keys {
		material += countAllVersions(t, db, keyMaterialKey(k.scope(), k.ID))
		db.View(func(txn *badger.Txn) error {
			if _, err := txn.Get(keyLocationKey(k.ID)); err == nil {
				index++
			}
			if item, err := txn.Get(keyScopeKey(k.scope())); err == nil {
				item.Value(func(v []byte) error {
					if string(v) == string(k.ID[:]) {
						index++
					}
					return nil
				})
			}
			return nil
		})
	}
	return material, index
}

// Destroying keys is idempotent whatever step a kill stopped it at, for
// exact keys (an erasure) and whole buckets (a sweep): calling Shred again
// with the same arguments, as Resume does, leaves neither material (in any
// version) nor index records (location, scope).
func TestShredAfterAKillDuringDestroyFinishes(t *testing.T) {
	ctx := context.Background()
	killed := errors.New("killed")
	for _, tc := range []struct {
		name   string
		bucket bool
		// kill leaves the key store as a kill during destroy does.
		kill func(t *testing.T, l *Ledger, dir string, keys []*KeyRef, b Bucket) *Ledger
	}{
		{"before the drop", false, killBeforeDrop(killed)},
		{"bucket, before the drop", true, killBeforeDrop(killed)},
		{"after the drop, before the index cleanup (an earlier build's order)", false, dropOnly},
		{"bucket, after the drop, before the index cleanup (an earlier build's order)", true, dropOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir)
			var erase = map[uint64]bool{}
			for i, s := range []string{"dave", "erin", "dave"} {
				r := subjectSpan(i, s, "x")
				r.RetentionClass = "short"
				rs := mustAppend(t, l, "default", r)
				erase[rs[0].Index] = true
			}
			keys, err := l.Keys(ctx, "default")
			if err != nil || len(keys) != 2 {
				t.Fatalf("Keys() = %v, %v", keys, err)
			}
			b := keys[0].Bucket()
			exact, buckets := keys, []Bucket(nil)
			if tc.bucket {
				exact, buckets = nil, []Bucket{b}
			}
			l = tc.kill(t, l, dir, exact, b)
			// The kill left material without index records, or the reverse.
			if m, i := keyRecords(t, dir, keys); (m == 0) == (i == 0) {
				t.Fatalf("after the kill: %d versions of key material and %d index records; want one kind left", m, i)
			}
			l = openTest(t, dir)
			if _, err := l.Shred(ctx, "default", exact, buckets, erase); err != nil {
				t.Fatalf("Shred() again after the kill = %v", err)
			}
			l.Close()
			if m, i := keyRecords(t, dir, keys); m != 0 || i != 0 {
				t.Errorf("after Shred again: %d versions of key material and %d index records left", m, i)
			}
		})
	}
}

// killBeforeDrop runs Shred until its DropPrefix, which the kill stops.
func killBeforeDrop(killed error) func(t *testing.T, l *Ledger, dir string, keys []*KeyRef, b Bucket) *Ledger {
	return func(t *testing.T, l *Ledger, dir string, keys []*KeyRef, b Bucket) *Ledger {
		t.Helper()
		l.keys.beforeDrop = func() error { return killed }
		var buckets []Bucket
		if keys == nil {
			buckets = []Bucket{b}
		}
		n, _ := l.Size(context.Background(), "default")
		erase := map[uint64]bool{}
		for i := uint64(0); i < n; i++ {
			erase[i] = true
		}
		if _, err := l.Shred(context.Background(), "default", keys, buckets, erase); !errors.Is(err, killed) {
			t.Fatalf("Shred() with a kill before its drop = %v", err)
		}
		l.Close()
		return l
	}
}

// dropOnly drops the keys' material and nothing else, as an earlier build
// killed between its drop and its index cleanup left it.
func dropOnly(t *testing.T, l *Ledger, dir string, keys []*KeyRef, b Bucket) *Ledger {
	t.Helper()
	l.Close()
	db := rawKeyDB(t, dir)
	defer db.Close()
	prefixes := [][]byte{bucketPrefix(nsKeyMaterial, b)}
	for _, k := range keys {
		prefixes = append(prefixes, keyMaterialKey(k.scope(), k.ID))
	}
	if err := db.DropPrefix(prefixes...); err != nil {
		t.Fatal(err)
	}
	return l
}
