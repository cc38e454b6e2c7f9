package bundle

import (
	"archive/zip"
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/flate"
)

// Writer writes a bundle as a stream: entry files first, then the
// checkpoint, the optional consistency proof, the report, and last the
// manifest and its signature. It holds one file at a time in memory plus
// the manifest's list of files.
//
// Entry files are stored (zip method 0) unless DeflateEntries is set:
// stored, they take about a third of a verifier's CPU less to read
// (nothing to inflate) and the bundle about a third more room
// (docs/BUNDLE.md, docs/PERFORMANCE.md). Every other file is deflated.
// Verifiers read either form.
type Writer struct {
	// DeflateEntries compresses entry files Huffman-only (huffman.go),
	// as exporters did before entry files were stored. Set it before the
	// first Prepare or AddEntry.
	DeflateEntries bool

	zw      *zip.Writer
	m       Manifest
	written int64 // uncompressed bytes of the files so far
	huffman bool  // the file being created is compressed Huffman-only
}

// NewWriter starts a bundle. m must have Origin, Tenant, LogKey,
// CreatedAt, Selector and TreeSize set.
func NewWriter(w io.Writer, m Manifest) *Writer {
	m.Format = Format
	m.Entries, m.Files, m.Traces, m.Range = nil, nil, nil, nil
	bw := &Writer{zw: zip.NewWriter(w), m: m}
	bw.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		if bw.huffman {
			return huffmanOnly.get(out), nil
		}
		return bestSpeed.get(out), nil
	})
	return bw
}

// Compressors, pooled: each holds about a megabyte. Entry files are small
// and mostly base64 and hex, which Huffman coding alone compresses nearly
// as well as with matching (6 % more bytes) in half the time: most are
// coded with the code they share (huffman.go), the rest and range.bin
// Huffman-only with a code of their own; the other files use the fastest
// level with matching. klauspost/compress's deflate (standard deflate,
// read by any inflater) builds a Huffman-only block in about 60% of the
// CPU time of the standard library's on entry files (docs/PERFORMANCE.md).
var (
	bestSpeed   = &flatePool{level: flate.BestSpeed}
	huffmanOnly = &flatePool{level: flate.HuffmanOnly}
)

type flatePool struct {
	level int
	pool  sync.Pool
}

// get returns a compressor writing to out; Close returns it to the pool.
func (p *flatePool) get(out io.Writer) *pooledFlate {
	fw, _ := p.pool.Get().(*flate.Writer)
	if fw == nil {
		fw, _ = flate.NewWriter(out, p.level) // cannot fail at these levels
	} else {
		fw.Reset(out)
	}
	return &pooledFlate{fw, p}
}

type pooledFlate struct {
	*flate.Writer
	from *flatePool
}

func (p *pooledFlate) Close() error {
	err := p.Writer.Close()
	p.from.pool.Put(p.Writer)
	p.Writer = nil
	return err
}

// hashingWriter hashes what goes into a zip file.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	h.h.Write(p)
	h.n += int64(len(p))
	return h.w.Write(p)
}

// file writes one file and lists it with its digest.
func (w *Writer) file(name string, write func(io.Writer) error) error {
	zf, err := w.zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: w.m.CreatedAt})
	if err != nil {
		return err
	}
	hw := &hashingWriter{w: zf, h: sha256.New()}
	if err := write(hw); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if w.written += hw.n; w.written > MaxBundleBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, uint64(MaxBundleBytes))
	}
	w.m.Files = append(w.m.Files, FileDigest{Name: name, SHA256: hex.EncodeToString(hw.h.Sum(nil))})
	return nil
}

// AddTrace lists a trace id in the manifest.
func (w *Writer) AddTrace(trace [16]byte) {
	w.m.Traces = append(w.m.Traces, hex.EncodeToString(trace[:]))
}

// ErrTooLarge is returned (wrapped) when a bundle would exceed the
// limits a verifier accepts (MaxEntries, MaxEntryFileBytes, ...).
var ErrTooLarge = errors.New("the bundle would exceed the verifier's limits")

// AddEntry writes an entry file. Decoded is filled from the payload, or
// Undecodable when the payload has no decoded form (DecodePayload).
func (w *Writer) AddEntry(e *Entry) error {
	p, err := w.Prepare(e)
	if err != nil {
		return err
	}
	return w.AddPrepared(p)
}

// AddPrepared writes an entry file prepared by Prepare.
func (w *Writer) AddPrepared(p *PreparedEntry) error {
	if len(w.m.Entries) == MaxEntries {
		return fmt.Errorf("%w: more than %d entries", ErrTooLarge, MaxEntries)
	}
	if w.written += int64(p.size); w.written > MaxBundleBytes {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, uint64(MaxBundleBytes))
	}
	name := EntryFile(p.Index)
	method := zip.Store
	if p.deflated {
		method = zip.Deflate
	}
	zf, err := w.zw.CreateRaw(&zip.FileHeader{Name: name, Method: method, Modified: w.m.CreatedAt,
		CRC32: p.crc32, CompressedSize64: uint64(len(p.data)), UncompressedSize64: uint64(p.size)})
	if err != nil {
		return err
	}
	if _, err := zf.Write(p.data); err != nil {
		return err
	}
	w.m.Entries = append(w.m.Entries, EntryRef{Index: p.Index, Kind: p.Kind.String(), File: name})
	w.m.Files = append(w.m.Files, FileDigest{Name: name, SHA256: hex.EncodeToString(p.sha256[:])})
	return nil
}

// AddRange writes range.bin (format 3, docs/BUNDLE.md): headers calls add
// with the canonical header of every entry from r.First-1 (when r.First >
// 0) to r.End (when r.End is below the tree size), in index order. r.Proof
// must prove the last of them in the tree of the bundle's checkpoint. The
// file is compressed Huffman-only, as entry files are, so that it
// expands at most MaxExpansion times.
func (w *Writer) AddRange(r Range, headers func(add func(header []byte) error) error) error {
	r.File = RangeFile
	w.huffman = true
	defer func() { w.huffman = false }()
	n := 0
	err := w.file(RangeFile, func(out io.Writer) error {
		bw := bufio.NewWriterSize(out, 64<<10)
		err := headers(func(h []byte) error {
			if n++; n > MaxRangeHeaders {
				return fmt.Errorf("%w: a time range of more than %d entries", ErrTooLarge, MaxRangeHeaders)
			}
			if len(h) > math.MaxUint16 {
				return fmt.Errorf("a header of %d bytes", len(h))
			}
			var l [2]byte
			binary.BigEndian.PutUint16(l[:], uint16(len(h)))
			bw.Write(l[:])
			_, err := bw.Write(h)
			return err
		})
		if err != nil {
			return err
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	w.m.Range = &r
	return nil
}

// AddCheckpoint writes the signed checkpoint the proofs are made against.
func (w *Writer) AddCheckpoint(note []byte) error {
	return w.file(CheckpointFile, func(out io.Writer) error {
		_, err := out.Write(note)
		return err
	})
}

// AddConsistency writes a consistency proof from a tree the auditor holds;
// p.OldCheckpoint must be the log's signed checkpoint of p.OldSize.
func (w *Writer) AddConsistency(p *ConsistencyProof) error {
	if p.OldCheckpoint == "" {
		return errors.New("a consistency proof needs the signed checkpoint of its old size")
	}
	w.m.Consistency = &Consistency{OldSize: p.OldSize, File: ConsistencyFile}
	return w.file(ConsistencyFile, func(out io.Writer) error {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(p)
	})
}

// AddReport writes report.html with the function given.
func (w *Writer) AddReport(write func(io.Writer) error) error {
	return w.file(ReportFile, write)
}

// Close writes the manifest and its signature and finishes the zip. sign
// returns the signed note over format.BundleSignatureBody for the
// manifest's SHA-256.
func (w *Writer) Close(sign func(manifestSHA256 [32]byte) ([]byte, error)) error {
	mb, err := json.MarshalIndent(&w.m, "", "  ")
	if err != nil {
		return err
	}
	mb = append(mb, '\n')
	sig, err := sign(sha256.Sum256(mb))
	if err != nil {
		return fmt.Errorf("sign manifest: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
	}{{ManifestFile, mb}, {SignatureFile, sig}} {
		zf, err := w.zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: w.m.CreatedAt})
		if err != nil {
			return err
		}
		if _, err := zf.Write(f.b); err != nil {
			return err
		}
	}
	return w.zw.Close()
}

// Manifest returns the manifest as written so far.
func (w *Writer) Manifest() *Manifest { return &w.m }
