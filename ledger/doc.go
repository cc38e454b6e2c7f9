// Package ledger is Veritrace's tamper-evident store.
//
// A ledger holds one append-only log per tenant. Every entry is a header and
// a payload. The header ([Header]) carries non-personal metadata only and is
// hashed into an RFC 6962 Merkle tree (leaf hash = SHA-256(0x00 || header))
// and into a hash chain (each header holds the previous entry's leaf hash).
// The payload is sealed with XChaCha20-Poly1305 under a random data key of
// its (tenant, subject, retention class, day) scope (a span that names no
// subject: its trace's, so that erasing a trace destroys no key another
// trace's entries are sealed under); the header commits to
// it with a salted SHA-256 whose salt is sealed with it. Data keys live in a
// key store beside the log, wrapped by a key-encryption key, so that
// destroying them erases payloads (crypto-shredding) while every header,
// tree hash, checkpoint and proof stays verifiable. Verifying the log never
// needs a data key.
//
// Guarantees:
//   - Append returns only after the entries, their tree hashes and the new
//     tree size are committed in one fsynced Badger transaction.
//   - Appends are atomic per call: all records of a call or none.
//   - Appending a record whose identity (trace and span id, or version id)
//     exists with identical payload returns the original receipt.
//   - Checkpoints are C2SP tlog-checkpoints signed as C2SP signed notes with
//     Ed25519, only ever over committed trees, and a checkpoint is signed only
//     after the stored tree has been checked against the previous one, so the
//     log never signs two inconsistent checkpoints.
//   - Every Append is answered exactly once, whatever else fails in its
//     group; a valid request never fails because of what else was in its
//     group: groups are bounded by Badger's transaction limits and split
//     when Badger still finds one too big.
//   - No entry is ever committed under a retired data key, or under any
//     key (stored or not yet) of a retired expiry bucket: retirement is a
//     durable marker in the log database, written and checked by the
//     writer in its commit transactions (a record sealed under a retired
//     key is re-sealed under a live one). Each group reads the retirement
//     epoch, which every marker-writing transaction advances, and the
//     markers it has not read since the epoch last moved. Every entry is
//     sealed under a key of its appended_at day, so an expiry bucket's
//     entries are found by its day. Destroyed key material is dropped from
//     the key store's files (one DropPrefix per erasure or sweep).
//   - No span of a closed trace (CloseTraces: an erasure erased it) is
//     committed after the close: the mark is durable state in the log
//     database, written through the writer and read by it in every group
//     that holds a new span of the trace.
//   - A commit whose outcome is unknown, in either database and by any
//     writer, fails the ledger: every later write fails with ErrFailed
//     until it is reopened, which recovers from disk.
//   - A kill at any moment leaves a directory Open recovers: Badger
//     replays its write-ahead logs, and Open first removes the empty
//     memtable and value-log files a kill can leave, which Badger v4
//     would refuse; a kill during the very first start leaves a
//     "creating" marker, and the next Open finishes the creation.
//   - Below the disk space reserve (Options.MinFreeBytes) appends fail with
//     ErrNoSpace before the disk fills; reads go on.
//
// One writer goroutine owns all log mutations and gathers concurrent appends
// into one transaction. It builds the next group while the previous one
// commits (pipeline.go), with every check reading the state that commit
// leaves, and hands a group to storage only once the one before it is
// durable; a commit storage refuses before writing anything moves no
// state, and a failed one fails the ledger before any later group. The formats are specified in docs/FORMAT.md.
package ledger
