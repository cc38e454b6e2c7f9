package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/tlog"
)

// checkKeyFormat brings the key database to keyFormatVersion: a new
// database is marked with it; one of format 1 is migrated (migrateKeysV1);
// any other version is refused with ErrUnknownFormat.
func checkKeyFormat(db *badger.DB, log *slog.Logger) error {
	v, err := readFormat(db)
	switch {
	case err != nil:
		return err
	case v == 1:
		return migrateKeysV1(db, log)
	case v == 0 || v == keyFormatVersion:
		return setFormat(db, keyFormatVersion, v)
	}
	return fmt.Errorf("%w: key database format %d, this build reads %d", ErrUnknownFormat, v, keyFormatVersion)
}

// readFormat returns a database's format version, 0 if it has none (new).
func readFormat(db *badger.DB) (uint32, error) {
	var v uint32
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaFormat)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(b []byte) error {
			if len(b) != 4 {
				return fmt.Errorf("%w: format version of %d bytes", ErrUnknownFormat, len(b))
			}
			v = binary.BigEndian.Uint32(b)
			return nil
		})
	})
	return v, err
}

func setFormat(db *badger.DB, v, was uint32) error {
	if v == was {
		return nil
	}
	return db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaFormat, binary.BigEndian.AppendUint32(nil, v))
	})
}

// migrateKeysV1 converts a key database of format 1, where a key's
// material sat under its id (nsDataKeyV1) and scopes were indexed subject
// first (nsKeyScopeV1), to format 2. It is crash-safe and idempotent:
//  1. every key's material, location and scope records are written in the
//     format-2 layout (the wrapped bytes are moved as they are: the wrapping
//     binds the key id only), in synced batches; rewriting them after a
//     crash writes the same records;
//  2. one DropPrefix removes every format-1 record from memory and files,
//     so no copy of key material stays outside the bucket layout (a later
//     destruction could not reach it). Badger's DropPrefix skips a prefix
//     that holds no live key, leaving the older versions of deleted keys
//     (the material of keys the previous build destroyed) in the files:
//     so a live placeholder key, the bare namespace byte, is first set
//     under each prefix, and dropped with it;
//  3. the format version is set to 2.
//
// A crash before 3 leaves format 1, and the next open starts again at 1:
// the format-1 records are still there before 2 and gone after it, where
// step 1 finds nothing to do.
func migrateKeysV1(db *badger.DB, log *slog.Logger) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsDataKeyV1}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if len(item.Key()) == 1 {
				continue // the placeholder of step 2, left by a crash
			}
			if len(item.Key()) != 17 {
				return fmt.Errorf("malformed format-1 data key record %x", item.Key())
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) <= wrappedKeySize {
				return fmt.Errorf("format-1 data key record %x has no scope", item.Key())
			}
			k, err := parseScopeKeyV1(v[wrappedKeySize:])
			if err != nil {
				return err
			}
			copy(k.ID[:], item.Key()[1:])
			mkey := keyMaterialKey(k.scope(), k.ID)
			if err := wb.Set(mkey, v[:wrappedKeySize]); err != nil {
				return err
			}
			if err := wb.Set(keyLocationKey(k.ID), mkey); err != nil {
				return err
			}
			n++
		}
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsKeyScopeV1}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if len(it.Item().Key()) == 1 {
				continue // the placeholder of step 2, left by a crash
			}
			k, err := parseScopeKeyV1(it.Item().KeyCopy(nil))
			if err != nil {
				return err
			}
			id, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if err := wb.Set(keyScopeKey(k.scope()), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = finishMigration(db, wb, keyFormatVersion, nsKeyScopeV1, nsDataKeyV1)
	}
	if err != nil {
		return fmt.Errorf("migrate the key database from format 1 to %d: %w", keyFormatVersion, err)
	}
	log.Info("migrated the key database to its new format", "from", 1, "to", keyFormatVersion, "data_keys", n)
	return nil
}

// parseScopeKeyV1 parses a format-1 scope key:
// nsKeyScopeV1 | tenant | subject pseudonym (16) | day (u32) | class.
func parseScopeKeyV1(b []byte) (*KeyRef, error) {
	const fixed = 1 + 4 + termMACSize + 4
	if len(b) <= fixed || b[0] != nsKeyScopeV1 {
		return nil, fmt.Errorf("malformed format-1 key scope %x", b)
	}
	k := &KeyRef{Tenant: binary.BigEndian.Uint32(b[1:]), Day: binary.BigEndian.Uint32(b[5+termMACSize:]), Class: string(b[fixed:])}
	copy(k.Pseudonym[:], b[5:])
	return k, nil
}

// migrateLogV1 converts a log database of format 1, where each header
// (nsHeaderV1) and each stored tree hash (nsHashV1) had a key of its own,
// to the current format (3), where one entry record (nsEntry) holds an
// entry's header and the tree hashes its append completed (record.go);
// its index term keys are posting blocks of one entry already. Like
// migrateKeysV1 it is crash-safe and idempotent:
//  1. every entry record is written from the format-1 header and hashes,
//     in synced batches; rewriting them after a crash writes the same
//     records;
//  2. one DropPrefix removes every format-1 header and tree hash (with
//     placeholders, as in migrateKeysV1);
//  3. the format version is set to logFormatVersion.
//
// A crash before 3 leaves format 1, and the next open starts again: before
// 2 the format-1 records are all there, after it step 1 finds none. A tree
// hash missing from a format-1 log stops the migration (and the open): the
// previous build's verify-log names the damage.
func migrateLogV1(db *badger.DB, log *slog.Logger) error {
	log.Info("migrating the log database to its new format; this reads and rewrites every header once", "from", 1, "to", logFormatVersion)
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsHeaderV1}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			if len(key) == 1 {
				continue // the placeholder of step 2, left by a crash
			}
			if len(key) != 1+4+8 {
				return fmt.Errorf("malformed format-1 header key %x", key)
			}
			tenant, index := binary.BigEndian.Uint32(key[1:]), binary.BigEndian.Uint64(key[5:])
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			for level := 1; level <= completedLevels(index); level++ {
				x := tlog.StoredHashIndex(level, int64(index+1)>>level-1)
				item, err := txn.Get(tenantIndexKey(nsHashV1, tenant, uint64(x)))
				if err != nil {
					return fmt.Errorf("tenant %d: tree hash %d (level %d) of entry %d: %w", tenant, x, level, index, err)
				}
				h, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				if len(h) != tlog.HashSize {
					return fmt.Errorf("tenant %d: tree hash %d of %d bytes", tenant, x, len(h))
				}
				v = append(v, h...)
			}
			if err := wb.Set(entryKey(tenant, index), v); err != nil {
				return err
			}
			if n++; n%100_000 == 0 {
				log.Info("migrating the log database", "entries", n)
			}
		}
		return nil
	})
	if err == nil {
		err = finishMigration(db, wb, logFormatVersion, nsHeaderV1, nsHashV1)
	}
	if err != nil {
		return fmt.Errorf("migrate the log database from format 1 to %d: %w", logFormatVersion, err)
	}
	log.Info("migrated the log database to its new format", "from", 1, "to", logFormatVersion, "entries", n)
	return nil
}

// finishMigration ends a migration from format 1 whose new records are in
// wb: it flushes them (synced), drops every record under the old layout's
// namespaces from memory and files with one DropPrefix, and sets the
// format version, each step only once the one before succeeded. Badger's
// DropPrefix skips a prefix that holds no live key, which would leave the
// older versions of deleted keys in the files (in the key database, the
// material of keys the previous build destroyed): so a live placeholder,
// the bare namespace byte, is first set under each old namespace and
// dropped with it. The migrations skip a placeholder a crash left.
func finishMigration(db *badger.DB, wb *badger.WriteBatch, version uint32, oldNamespaces ...byte) error {
	if err := wb.Flush(); err != nil {
		return err
	}
	prefixes := make([][]byte, len(oldNamespaces))
	for i, ns := range oldNamespaces {
		prefixes[i] = []byte{ns}
	}
	err := db.Update(func(txn *badger.Txn) error {
		for _, p := range prefixes {
			if err := txn.Set(p, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := db.DropPrefix(prefixes...); err != nil {
		return err
	}
	return setFormat(db, version, 1)
}
