package bundle

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"sync"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/veritrace/veritrace/gen/veritrace/v1"
	"github.com/veritrace/veritrace/ledger/format"
)

// Writer writes a bundle as a stream: entry files first, then the
// checkpoint, the optional consistency proof, the report, and last the
// manifest and its signature. It holds one file at a time in memory plus
// the manifest's list of files.
type Writer struct {
	zw *zip.Writer
	m  Manifest
}

// NewWriter starts a bundle. m must have Origin, Tenant, LogKey,
// CreatedAt, Selector and TreeSize set.
func NewWriter(w io.Writer, m Manifest) *Writer {
	m.Format = Format
	m.Entries, m.Files, m.Traces = nil, nil, nil
	zw := zip.NewWriter(w)
	// Entry files are small and mostly base64: the fastest level loses
	// little size and saves most of the time.
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		fw, _ := flatePool.Get().(*flate.Writer)
		if fw == nil {
			var err error
			if fw, err = flate.NewWriter(out, flate.BestSpeed); err != nil {
				return nil, err
			}
		} else {
			fw.Reset(out)
		}
		return &pooledFlate{fw}, nil
	})
	return &Writer{zw: zw, m: m}
}

// flatePool reuses compressors across files: each holds about a megabyte.
var flatePool sync.Pool

type pooledFlate struct{ *flate.Writer }

func (p *pooledFlate) Close() error {
	err := p.Writer.Close()
	flatePool.Put(p.Writer)
	p.Writer = nil
	return err
}

// hashingWriter hashes what goes into a zip file.
type hashingWriter struct {
	w io.Writer
	h hash.Hash
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	h.h.Write(p)
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
	w.m.Files = append(w.m.Files, FileDigest{Name: name, SHA256: hex.EncodeToString(hw.h.Sum(nil))})
	return nil
}

// AddTrace lists a trace id in the manifest.
func (w *Writer) AddTrace(trace [16]byte) {
	w.m.Traces = append(w.m.Traces, hex.EncodeToString(trace[:]))
}

// AddEntry writes an entry file. Decoded is filled from the payload.
func (w *Writer) AddEntry(e *Entry) error {
	h, err := format.ParseHeader(e.Header)
	if err != nil {
		return err
	}
	if !e.Erased {
		if e.Decoded, err = DecodePayload(h.Kind, e.Payload); err != nil {
			return fmt.Errorf("entry %d: %w", e.Index, err)
		}
	}
	name := EntryFile(e.Index)
	w.m.Entries = append(w.m.Entries, EntryRef{Index: e.Index, Kind: h.Kind.String(), File: name})
	return w.file(name, func(out io.Writer) error {
		return json.NewEncoder(out).Encode(e) // one line: indenting costs a third of an export
	})
}

// DecodePayload returns a span or version payload as proto JSON.
func DecodePayload(kind format.Kind, payload []byte) (json.RawMessage, error) {
	var msg proto.Message
	switch kind {
	case format.KindSpan:
		msg = &v1.Span{}
	case format.KindVersion:
		msg = &v1.Version{}
	case format.KindAccess:
		msg = &v1.AccessRecord{}
	case format.KindTombstone, format.KindRetention, format.KindHold:
		var out bytes.Buffer // these payloads are JSON already
		if err := json.Compact(&out, payload); err != nil {
			return nil, fmt.Errorf("decode %s payload: %w", kind, err)
		}
		return out.Bytes(), nil
	default:
		return nil, fmt.Errorf("no decoder for %s entries", kind)
	}
	if err := proto.Unmarshal(payload, msg); err != nil {
		return nil, fmt.Errorf("decode %s payload: %w", kind, err)
	}
	return protojson.Marshal(msg)
}

// AddCheckpoint writes the signed checkpoint the proofs are made against.
func (w *Writer) AddCheckpoint(note []byte) error {
	return w.file(CheckpointFile, func(out io.Writer) error {
		_, err := out.Write(note)
		return err
	})
}

// AddConsistency writes a consistency proof from a tree the auditor holds.
func (w *Writer) AddConsistency(p *ConsistencyProof) error {
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
