package ledger

import (
	"encoding/binary"

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
	nsHeader     = 0x10 // nsHeader | tenant | index (u64)      -> canonical header bytes
	nsPayload    = 0x11 // nsPayload | tenant | index           -> sealed payload envelope
	nsHash       = 0x12 // nsHash | tenant | stored index (u64) -> tree hash (32 bytes)
	nsTreeSize   = 0x13 // nsTreeSize | tenant                  -> tree size (u64)
	nsCheckpoint = 0x14 // nsCheckpoint | tenant | size (u64)   -> signed checkpoint note
	nsIdentity   = 0x15 // nsIdentity | tenant | kind (u8) | identity (32 bytes) -> index (u64)
	nsVersion    = 0x16 // nsVersion | tenant | version kind (u8) | name 0x00 label -> id (32) | index (u64)
	nsKindIndex  = 0x17 // nsKindIndex | tenant | kind (u8) | index -> empty; entries of every kind but spans
	nsTerm       = 0x18 // nsTerm | tenant | field (u8) | value MAC (16) | index -> empty; secondary index terms
	nsErasedBy   = 0x19 // nsErasedBy | tenant | index -> index (u64) of the tombstone that names the entry
	nsState      = 0x1a // nsState | tenant | name -> state record of the retention package
	nsRetired    = 0x1b // nsRetired | 0x01 | key id (16) -> empty: the data key seals no new entry
	//                     nsRetired | 0x02 | tenant | day (u32) | len(class) (u8) | class -> empty: no key of the expiry bucket does
	nsAPIKey = 0x30 // nsAPIKey | key id (8)                -> API key record (JSON)
)

// Key database (DIR/keys):
const (
	nsKeyScope = 0x20 // nsKeyScope | tenant | subject pseudonym (16) | day (u32) | class -> key id (16)
	nsDataKey  = 0x21 // nsDataKey | key id (16)                -> wrapped data key (72) | scope key
)

// Meta keys, in both databases.
var (
	metaFormat     = []byte{nsMeta, 'f', 'o', 'r', 'm', 'a', 't'}                          // u32 format version
	metaVerifier   = []byte{nsMeta, 'v', 'e', 'r', 'i', 'f', 'i', 'e', 'r'}                // note verifier key text
	metaNextTenant = []byte{nsMeta, 'n', 'e', 'x', 't', '-', 't', 'e', 'n', 'a', 'n', 't'} // u32
)

func tenantNameKey(name string) []byte {
	return append([]byte{nsTenantName}, name...)
}

func tenantIDKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{nsTenantID}, id)
}

func tenantKey(ns byte, tenant uint32) []byte {
	k := make([]byte, 1, 13)
	k[0] = ns
	return binary.BigEndian.AppendUint32(k, tenant)
}

func tenantIndexKey(ns byte, tenant uint32, i uint64) []byte {
	return binary.BigEndian.AppendUint64(tenantKey(ns, tenant), i)
}

func headerKey(tenant uint32, index uint64) []byte  { return tenantIndexKey(nsHeader, tenant, index) }
func payloadKey(tenant uint32, index uint64) []byte { return tenantIndexKey(nsPayload, tenant, index) }
func hashKey(tenant uint32, stored int64) []byte {
	return tenantIndexKey(nsHash, tenant, uint64(stored))
}
func treeSizeKey(tenant uint32) []byte { return tenantKey(nsTreeSize, tenant) }
func checkpointKey(tenant uint32, size uint64) []byte {
	return tenantIndexKey(nsCheckpoint, tenant, size)
}

func identityKey(tenant uint32, kind format.Kind, id [32]byte) []byte {
	k := append(tenantKey(nsIdentity, tenant), byte(kind))
	return append(k, id[:]...)
}

func kindIndexPrefix(tenant uint32, kind format.Kind) []byte {
	return append(tenantKey(nsKindIndex, tenant), byte(kind))
}

func kindIndexKey(tenant uint32, kind format.Kind, index uint64) []byte {
	return binary.BigEndian.AppendUint64(kindIndexPrefix(tenant, kind), index)
}

func termPrefixKey(tenant uint32, field uint8, mac [termMACSize]byte) []byte {
	k := append(tenantKey(nsTerm, tenant), field)
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

func keyScopePrefix(tenant uint32, pseudonym [termMACSize]byte) []byte {
	return append(tenantKey(nsKeyScope, tenant), pseudonym[:]...)
}

func keyScopeKey(s keyScope) []byte {
	k := keyScopePrefix(s.tenant, s.pseudonym)
	k = binary.BigEndian.AppendUint32(k, s.day)
	return append(k, s.class...)
}

func dataKeyKey(id [16]byte) []byte {
	return append([]byte{nsDataKey}, id[:]...)
}

// Kinds of retirement markers (nsRetired).
const (
	retiredKey    = 0x01
	retiredBucket = 0x02
)

func retiredKeyKey(id [16]byte) []byte {
	return append([]byte{nsRetired, retiredKey}, id[:]...)
}

func retiredBucketKey(b Bucket) []byte {
	k := binary.BigEndian.AppendUint32([]byte{nsRetired, retiredBucket}, b.Tenant)
	k = binary.BigEndian.AppendUint32(k, b.Day)
	k = append(k, byte(len(b.Class)))
	return append(k, b.Class...)
}
