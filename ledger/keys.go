package ledger

import (
	"encoding/binary"
	"fmt"

	"github.com/veritrace/veritrace/ledger/format"
)

// Badger key layout. Every key starts with one namespace byte followed by
// fixed-width big-endian fields; a variable-length field, where there is
// one, comes last. This file is the only place that builds keys.
//
// Log database (DIR/ledger):
const (
	nsMeta       = 0x00 // nsMeta | name                        -> value (see meta* below)
	nsTenantName = 0x01 // nsTenantName | tenant name           -> tenant id (u32)
	nsTenantID   = 0x02 // nsTenantID | tenant id (u32)         -> tenant name
	nsPayload    = 0x11 // nsPayload | tenant | index           -> sealed payload envelope
	nsTreeSize   = 0x13 // nsTreeSize | tenant                  -> tree size (u64)
	nsCheckpoint = 0x14 // nsCheckpoint | tenant | size (u64)   -> signed checkpoint note
	nsIdentity   = 0x15 // nsIdentity | tenant | kind (u8) | identity (32 bytes) -> index (u64)
	nsVersion    = 0x16 // nsVersion | tenant | version kind (u8) | name 0x00 label -> id (32) | index (u64)
	nsKindIndex  = 0x17 // nsKindIndex | tenant | kind (u8) | index -> empty; entries of every kind but spans
	nsTerm       = 0x18 // nsTerm | tenant | field (u8) | value MAC (16) | index K -> posting block: entries up to K carrying the term (terms.go)
	nsErasedBy   = 0x19 // nsErasedBy | tenant | index -> index (u64) of the tombstone that names the entry
	nsState      = 0x1a // nsState | tenant | name -> state record of the retention package
	nsRetired    = 0x1b // retirement markers, see retiredKeyKey and retiredBucketKey
	nsDaySealed  = 0x1c // nsDaySealed | tenant -> u64 index: entries from it on are sealed under keys of their appended_at day
	nsEntry      = 0x1d // nsEntry | tenant | index (u64)       -> entry record: canonical header || the tree hashes the entry completes (record.go)
	nsClosed     = 0x1e // nsClosed | tenant | trace id (16) -> erasure request id: the trace was erased, no later span is accepted
	nsAPIKey     = 0x30 // nsAPIKey | key id (8)                -> API key record (JSON)
)

// Log database format 1, read only to migrate it (migrate.go): a header
// and each tree hash had a key of their own.
const (
	nsHeaderV1 = 0x10 // nsHeaderV1 | tenant | index (u64)      -> canonical header bytes
	nsHashV1   = 0x12 // nsHashV1 | tenant | stored index (u64) -> tree hash (32 bytes)
)

// Key database (DIR/keys), format 2. Key material lives only under
// nsKeyMaterial, laid out so that every key of one expiry bucket (tenant,
// day, class) shares a prefix: a sweep drops whole buckets with one
// DropPrefix. The index records hold no key material.
const (
	nsKeyMaterial = 0x22 // nsKeyMaterial | bucket | subject pseudonym (16) | key id (16) -> wrapped data key (72)
	nsKeyLocation = 0x23 // nsKeyLocation | key id (16) -> the key's nsKeyMaterial key
	nsKeyScope    = 0x24 // nsKeyScope | bucket | subject pseudonym (16) -> key id (16): the scope's current key
	nsPseudonym   = 0x25 // nsPseudonym | tenant | field (u8) | value MAC (16) -> wrapped pseudonym key (72); see pseudonyms.go
	// where bucket = tenant (u32) | day (u32) | len(class) (u8) | class
)

// Key database format 1, read only to migrate it (migrate.go).
const (
	nsKeyScopeV1 = 0x20 // nsKeyScopeV1 | tenant | subject pseudonym (16) | day (u32) | class -> key id (16)
	nsDataKeyV1  = 0x21 // nsDataKeyV1 | key id (16) -> wrapped data key (72) | format-1 scope key
)

// Format versions of the two databases (metaFormat).
const (
	// The log database; format.FormatVersion is that of headers. Format 3
	// stores index terms in posting blocks; a format-2 database is one
	// whose blocks all hold one entry, so it is read as it is.
	logFormatVersion = 3
	keyFormatVersion = 2
)

// Meta keys, in both databases.
var (
	metaFormat     = []byte{nsMeta, 'f', 'o', 'r', 'm', 'a', 't'}                          // u32 format version
	metaVerifier   = []byte{nsMeta, 'v', 'e', 'r', 'i', 'f', 'i', 'e', 'r'}                // note verifier key text
	metaNextTenant = []byte{nsMeta, 'n', 'e', 'x', 't', '-', 't', 'e', 'n', 'a', 'n', 't'} // u32
	// metaRetireEpoch (log database) counts the group transactions that
	// wrote retirement markers: u64, absent before the first.
	metaRetireEpoch = []byte{nsMeta, 'r', 'e', 't', 'i', 'r', 'e', '-', 'e', 'p', 'o', 'c', 'h'}
	// metaClosedEpoch (log database) counts the group transactions that
	// wrote or deleted closed marks (nsClosed): u64, absent before the
	// first.
	metaClosedEpoch = []byte{nsMeta, 'c', 'l', 'o', 's', 'e', 'd', '-', 'e', 'p', 'o', 'c', 'h'}
)

func tenantNameKey(name string) []byte {
	return append([]byte{nsTenantName}, name...)
}

func tenantIDKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{nsTenantID}, id)
}

func tenantKey(ns byte, tenant uint32) []byte { return tenantKeyRoom(ns, tenant, 8) }

// tenantKeyRoom is tenantKey with room for n more bytes, so that a key is
// built in one allocation (the writer builds several per entry).
func tenantKeyRoom(ns byte, tenant uint32, n int) []byte {
	k := make([]byte, 1, 1+4+n)
	k[0] = ns
	return binary.BigEndian.AppendUint32(k, tenant)
}

func tenantIndexKey(ns byte, tenant uint32, i uint64) []byte {
	return binary.BigEndian.AppendUint64(tenantKey(ns, tenant), i)
}

func entryKey(tenant uint32, index uint64) []byte   { return tenantIndexKey(nsEntry, tenant, index) }
func payloadKey(tenant uint32, index uint64) []byte { return tenantIndexKey(nsPayload, tenant, index) }
func treeSizeKey(tenant uint32) []byte              { return tenantKey(nsTreeSize, tenant) }
func checkpointKey(tenant uint32, size uint64) []byte {
	return tenantIndexKey(nsCheckpoint, tenant, size)
}

func identityKey(tenant uint32, kind format.Kind, id [32]byte) []byte {
	k := append(tenantKeyRoom(nsIdentity, tenant, 1+32), byte(kind))
	return append(k, id[:]...)
}

func kindIndexPrefix(tenant uint32, kind format.Kind) []byte {
	return append(tenantKeyRoom(nsKindIndex, tenant, 1+8), byte(kind))
}

func kindIndexKey(tenant uint32, kind format.Kind, index uint64) []byte {
	return binary.BigEndian.AppendUint64(kindIndexPrefix(tenant, kind), index)
}

func termPrefixKey(tenant uint32, field uint8, mac [termMACSize]byte) []byte {
	k := append(tenantKeyRoom(nsTerm, tenant, 1+termMACSize+8), field) // room for an index
	return append(k, mac[:]...)
}

func apiKeyKey(id [8]byte) []byte {
	return append([]byte{nsAPIKey}, id[:]...)
}

func versionNamePrefix(tenant uint32, kind format.VersionKind) []byte {
	return append(tenantKey(nsVersion, tenant), byte(kind))
}

func versionNameKey(tenant uint32, kind format.VersionKind, name, label string) []byte {
	k := append(versionNamePrefix(tenant, kind), name...)
	k = append(k, 0)
	return append(k, label...)
}

// bucketPrefix is the prefix of the key material of an expiry bucket.
func bucketPrefix(ns byte, b Bucket) []byte {
	k := make([]byte, 1, 1+4+4+1+len(b.Class)+termMACSize+16)
	k[0] = ns
	k = binary.BigEndian.AppendUint32(k, b.Tenant)
	k = binary.BigEndian.AppendUint32(k, b.Day)
	k = append(k, byte(len(b.Class)))
	return append(k, b.Class...)
}

// keyScopeKey is a scope's index record: its current key.
func keyScopeKey(s keyScope) []byte {
	return append(bucketPrefix(nsKeyScope, s.bucket()), s.pseudonym[:]...)
}

// keyMaterialKey is where a data key's wrapped material lives.
func keyMaterialKey(s keyScope, id [16]byte) []byte {
	k := append(bucketPrefix(nsKeyMaterial, s.bucket()), s.pseudonym[:]...)
	return append(k, id[:]...)
}

// pseudonymKeyKey is where the pseudonym key of a tenant's term lives.
func pseudonymKeyKey(tenant uint32, r TermRef) []byte {
	k := append(tenantKey(nsPseudonym, tenant), r.Field)
	return append(k, r.MAC[:]...)
}

func keyLocationKey(id [16]byte) []byte {
	return append([]byte{nsKeyLocation}, id[:]...)
}

// parseKeyMaterialKey returns the data key a key material key names.
func parseKeyMaterialKey(b []byte) (*KeyRef, error) {
	const head = 1 + 4 + 4 + 1
	if len(b) < head || b[0] != nsKeyMaterial || len(b) != head+int(b[9])+termMACSize+16 {
		return nil, fmt.Errorf("malformed key material key %x", b)
	}
	n := int(b[9])
	k := &KeyRef{Tenant: binary.BigEndian.Uint32(b[1:]), Day: binary.BigEndian.Uint32(b[5:]), Class: string(b[head : head+n])}
	copy(k.Pseudonym[:], b[head+n:])
	copy(k.ID[:], b[head+n+termMACSize:])
	return k, nil
}

// Kinds of retirement markers (nsRetired).
const (
	retiredKey    = 0x01
	retiredBucket = 0x02
)

func retiredKeyKey(id [16]byte) []byte {
	return append([]byte{nsRetired, retiredKey}, id[:]...)
}

// closedTraceKey marks a trace closed by an erasure (closure.go).
func closedTraceKey(tenant uint32, trace [16]byte) []byte {
	return append(tenantKey(nsClosed, tenant), trace[:]...)
}

// retiredKeyKey marks a data key retired: nsRetired | 0x01 | key id (16).
// retiredBucketKey marks a whole expiry bucket retired:
// nsRetired | 0x02 | tenant | day | len(class) | class. Both have empty
// values; the writer checks them in every group transaction.
func retiredBucketKey(b Bucket) []byte {
	k := bucketPrefix(nsRetired, b)
	return append([]byte{nsRetired, retiredBucket}, k[1:]...)
}
