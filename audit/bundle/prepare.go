package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"strconv"
	"sync"

	"github.com/veritrace/veritrace/ledger/format"
)

// PreparedEntry is an entry file ready to be added to a bundle: encoded,
// hashed and, when the writer deflates entry files, compressed. Prepare
// does the work of AddEntry that needs no order, so that callers can
// prepare entries on several goroutines and add them in order with
// AddPrepared.
type PreparedEntry struct {
	Index    uint64
	Kind     format.Kind
	data     []byte // the file as it goes into the zip: stored, or deflated
	deflated bool
	sha256   [32]byte
	crc32    uint32
	size     int // uncompressed
}

// Size is the entry file's size, uncompressed.
func (p *PreparedEntry) Size() int { return p.size }

// Prepare fills e.Decoded (or e.Undecodable) from the payload and
// encodes and hashes e's entry file (and compresses it when
// w.DeflateEntries is set). It is safe for concurrent use.
func (w *Writer) Prepare(e *Entry) (*PreparedEntry, error) {
	h, err := format.ParseHeader(e.Header)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	e.Decoded, e.Undecodable = nil, ""
	if !e.Erased {
		if e.Decoded, err = DecodePayload(h.Kind, e.Payload); err != nil {
			e.Undecodable = err.Error()
		}
	}
	buf := entryBufs.Get().(*[]byte)
	defer func() {
		if cap(*buf) <= maxPooledEntryBuf {
			entryBufs.Put(buf)
		}
	}()
	b := appendEntryJSON((*buf)[:0], e)
	b = append(b, '\n')
	*buf = b
	if len(b) > MaxEntryFileBytes {
		return nil, fmt.Errorf("%w: entry %d's file would be %d bytes, more than %d", ErrTooLarge, e.Index, len(b), MaxEntryFileBytes)
	}
	p := &PreparedEntry{Index: e.Index, Kind: h.Kind, sha256: sha256.Sum256(b), crc32: crc32.ChecksumIEEE(b), size: len(b)}
	if !w.DeflateEntries {
		p.data = append(make([]byte, 0, len(b)), b...)
		return p, nil
	}
	p.deflated = true
	if p.data, err = compressEntryFile(b); err != nil {
		return nil, err
	}
	return p, nil
}

// compressEntryFile compresses an entry file Huffman-only: with the code
// shared by entry files (huffman.go), or, for a file unlike the others,
// with a code of its own.
func compressEntryFile(b []byte) ([]byte, error) {
	if bits := entryCode.bits(b); bits <= int(entryCodeMaxRatio*8*float64(len(b))) {
		return entryCode.encode(make([]byte, 0, bits/8+8), b), nil
	}
	var out bytes.Buffer
	out.Grow(len(b)*4/5 + 64)
	fw := huffmanOnly.get(&out)
	if _, err := fw.Write(b); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// entryBufs holds the buffers entry files are encoded in before they are
// copied or compressed; a buffer that grew past maxPooledEntryBuf (a big span) is
// left to the garbage collector.
var entryBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledEntryBuf = 64 << 10

// appendEntryJSON appends e as one line of JSON, as encoding/json would
// write it (the same members, omitted when empty), without reflection.
func appendEntryJSON(b []byte, e *Entry) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendUint(b, e.Index, 10)
	b = appendBase64Member(b, "header", e.Header)
	b = append(b, `,"leaf_hash":"`...)
	b = hex.AppendEncode(b, e.LeafHash[:])
	b = append(b, '"')
	if len(e.Payload) > 0 {
		b = appendBase64Member(b, "payload", e.Payload)
	}
	if len(e.Salt) > 0 {
		b = appendBase64Member(b, "salt", e.Salt)
	}
	if e.Erased {
		b = append(b, `,"erased":true`...)
	}
	b = append(b, `,"inclusion_proof":[`...)
	for i, h := range e.InclusionProof {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = hex.AppendEncode(b, h[:])
		b = append(b, '"')
	}
	b = append(b, ']')
	if len(e.Decoded) > 0 {
		b = append(b, `,"decoded":`...)
		b = append(b, e.Decoded...) // JSON from protojson or json.Compact
	}
	if e.Undecodable != "" {
		s, _ := json.Marshal(e.Undecodable)
		b = append(b, `,"undecodable":`...)
		b = append(b, s...)
	}
	return append(b, '}')
}

func appendBase64Member(b []byte, name string, v []byte) []byte {
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}
