package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/veritrace/veritrace/ledger/format"
)

// Checkpoint is a signed checkpoint of a tenant's log.
type Checkpoint = format.Checkpoint

// ErrInconsistent is returned when the stored tree no longer matches a
// checkpoint the log signed: the storage was altered. The log then refuses
// to sign.
var ErrInconsistent = errors.New("stored tree inconsistent with a signed checkpoint")

// checkpointer signs a checkpoint of every tenant whose log grew, once per
// interval, until the ledger closes.
func (l *Ledger) checkpointer() {
	defer l.wg.Done()
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.signDue(context.Background())
		}
	}
}

func (l *Ledger) signDue(ctx context.Context) {
	l.tenantMu.Lock()
	ids := make(map[uint32]string, len(l.tenants))
	for name, id := range l.tenants {
		ids[id] = name
	}
	l.tenantMu.Unlock()
	if l.failure() != nil {
		return // logged once when the ledger failed
	}
	for id, name := range ids {
		if _, err := l.sign(id, name, signIfGrown); err != nil {
			l.log.ErrorContext(ctx, "sign checkpoint", "tenant", name, "err", err)
		}
	}
}

// Checkpoint returns the latest signed checkpoint of a tenant's log. With
// fresh, it first signs one of the current tree if the latest does not
// cover it. A log that never signed one signs one now, even when empty.
func (l *Ledger) Checkpoint(ctx context.Context, tenant string, fresh bool) (*Checkpoint, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	mode := signLatest
	if fresh {
		mode = signFresh
	}
	return l.sign(tid, tenant, mode)
}

type signMode int

const (
	signIfGrown signMode = iota // periodic: sign only a tree that grew; nil for an empty log
	signLatest                  // return the latest checkpoint, signing one if there is none
	signFresh                   // sign the current tree unless the latest covers it
)

// sign signs a checkpoint of the committed tree, as mode says.
func (l *Ledger) sign(tid uint32, tenant string, mode signMode) (*Checkpoint, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	prev := l.latest[tid]
	if prev != nil && mode == signLatest {
		return prev, nil
	}
	size := l.committedSize(tid)
	if prev != nil && prev.Size >= size {
		return prev, nil
	}
	if prev == nil && size == 0 && mode == signIfGrown {
		return nil, nil
	}
	if err := l.failure(); err != nil {
		return nil, err // signing stores the checkpoint: a write
	}
	var root tlog.Hash
	err := l.db.View(func(txn *badger.Txn) error {
		r := hashReader(txn, tid)
		if prev != nil {
			// Never sign a tree that does not extend the last signed one.
			old, err := treeHash(prev.Size, r)
			if err != nil {
				return err
			}
			if old != prev.Root {
				return fmt.Errorf("%w: tree of size %d now hashes to %x, checkpoint says %x", ErrInconsistent, prev.Size, old, prev.Root)
			}
		}
		var err error
		root, err = treeHash(size, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	body := format.CheckpointBody(l.Origin(tenant), size, root)
	msg, err := note.Sign(&note.Note{Text: body}, l.signer)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint: %w", err)
	}
	// A checkpoint need not be durable before it is handed out: it only
	// covers committed entries, and Ed25519 signs the same body the same way.
	if err := l.update("store checkpoint", func(txn *badger.Txn) error {
		return txn.Set(checkpointKey(tid, size), msg)
	}); err != nil {
		return nil, fmt.Errorf("store checkpoint: %w", err)
	}
	cp := &Checkpoint{Origin: l.Origin(tenant), Size: size, Root: root, Note: msg}
	l.latest[tid] = cp
	return cp, nil
}

// treeHash is tlog.TreeHash with the RFC 6962 root of the empty tree.
func treeHash(size uint64, r tlog.HashReader) (tlog.Hash, error) {
	if size == 0 {
		return format.EmptyRoot, nil
	}
	return tlog.TreeHash(int64(size), r)
}

// CheckpointAt returns the checkpoint signed at exactly size, ErrNotFound
// if none was.
func (l *Ledger) CheckpointAt(ctx context.Context, tenant string, size uint64) (*Checkpoint, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return nil, err
	}
	var cp *Checkpoint
	err = l.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(checkpointKey(tid, size))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("checkpoint of size %d: %w", size, ErrNotFound)
		}
		if err != nil {
			return err
		}
		msg, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		cp, err = format.OpenCheckpoint(msg, l.verifier)
		return err
	})
	return cp, err
}

// readLatestCheckpoint returns the stored checkpoint of the largest size,
// without verifying it (Open verifies what it signs next against it).
func readLatestCheckpoint(txn *badger.Txn, tenant uint32) (*Checkpoint, error) {
	prefix := tenantKey(nsCheckpoint, tenant)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, Reverse: true})
	defer it.Close()
	it.Seek(append(prefix, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if !it.Valid() {
		return nil, nil
	}
	msg, err := it.Item().ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	text, _, ok := cutNote(msg)
	if !ok {
		return nil, fmt.Errorf("stored checkpoint: %w", format.ErrCheckpoint)
	}
	cp, err := format.ParseCheckpointBody(text)
	if err != nil {
		return nil, err
	}
	cp.Note = msg
	return cp, nil
}

// cutNote splits a signed note into its text (ending in a newline) and its
// signature block.
func cutNote(msg []byte) (text string, sigs []byte, ok bool) {
	for i := 0; i+1 < len(msg); i++ {
		if msg[i] == '\n' && msg[i+1] == '\n' {
			return string(msg[:i+1]), msg[i+2:], true
		}
	}
	return "", nil, false
}

// InclusionProof proves that entry index is in the tree of size treeSize
// (0: the latest checkpoint's size). It returns the proof, the entry's leaf
// hash and the tree size used. At most 1 + log2(size) hashes are read.
func (l *Ledger) InclusionProof(ctx context.Context, tenant string, index, treeSize uint64) (tlog.RecordProof, tlog.Hash, uint64, error) {
	tid, size, err := l.proofSize(ctx, tenant, treeSize)
	if err != nil {
		return nil, tlog.Hash{}, 0, err
	}
	if index >= size {
		return nil, tlog.Hash{}, 0, fmt.Errorf("%w: index %d is not below tree size %d", ErrInvalid, index, size)
	}
	var proof tlog.RecordProof
	var leaf tlog.Hash
	err = l.db.View(func(txn *badger.Txn) error {
		r := hashReader(txn, tid)
		hs, err := r.ReadHashes([]int64{tlog.StoredHashIndex(0, int64(index))})
		if err != nil {
			return err
		}
		leaf = hs[0]
		proof, err = tlog.ProveRecord(int64(size), int64(index), r)
		return err
	})
	return proof, leaf, size, err
}

// ConsistencyProof proves that the tree of oldSize is a prefix of the tree
// of newSize (0: the latest checkpoint's size).
func (l *Ledger) ConsistencyProof(ctx context.Context, tenant string, oldSize, newSize uint64) (tlog.TreeProof, uint64, error) {
	tid, size, err := l.proofSize(ctx, tenant, newSize)
	if err != nil {
		return nil, 0, err
	}
	if oldSize > size {
		return nil, 0, fmt.Errorf("%w: old size %d is above new size %d", ErrInvalid, oldSize, size)
	}
	if oldSize == 0 {
		return tlog.TreeProof{}, size, nil // the empty tree is a prefix of every tree
	}
	var proof tlog.TreeProof
	err = l.db.View(func(txn *badger.Txn) error {
		var err error
		proof, err = tlog.ProveTree(int64(size), int64(oldSize), hashReader(txn, tid))
		return err
	})
	return proof, size, err
}

// proofSize resolves the tree size a proof is made against.
func (l *Ledger) proofSize(ctx context.Context, tenant string, size uint64) (uint32, uint64, error) {
	tid, err := l.tenantID(ctx, tenant, false)
	if err != nil {
		return 0, 0, err
	}
	if size == 0 {
		cp, err := l.sign(tid, tenant, signLatest)
		if err != nil {
			return 0, 0, err
		}
		return tid, cp.Size, nil
	}
	if c := l.committedSize(tid); size > c {
		return 0, 0, fmt.Errorf("%w: tree size %d is above the log's size %d", ErrInvalid, size, c)
	}
	return tid, size, nil
}

// SignBundle signs an evidence bundle: a signed note, by the log key, over
// format.BundleSignatureBody(Origin(tenant), manifestSHA256).
func (l *Ledger) SignBundle(ctx context.Context, tenant string, manifestSHA256 [32]byte) ([]byte, error) {
	if _, err := l.tenantID(ctx, tenant, false); err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: format.BundleSignatureBody(l.Origin(tenant), manifestSHA256)}, l.signer)
}

// SignReceipt signs an erasure receipt: a signed note, by the log key,
// over format.ReceiptSignatureBody(Origin(tenant), receiptSHA256).
func (l *Ledger) SignReceipt(ctx context.Context, tenant string, receiptSHA256 [32]byte) ([]byte, error) {
	if _, err := l.tenantID(ctx, tenant, false); err != nil {
		return nil, err
	}
	return note.Sign(&note.Note{Text: format.ReceiptSignatureBody(l.Origin(tenant), receiptSHA256)}, l.signer)
}
