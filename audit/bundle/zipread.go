package bundle

import (
	"archive/zip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// inflaters are pooled deflate readers (each holds a 32 KiB window).
// klauspost/compress's inflater reads the Huffman-only entry files in
// about two thirds of the CPU time of the standard library's
// (docs/PERFORMANCE.md); the zip reader still checks every file's CRC-32
// and size, and the verifier its SHA-256.
var inflaters sync.Pool

type pooledInflater struct{ io.ReadCloser }

func (p *pooledInflater) Close() error {
	if p.ReadCloser == nil {
		return nil
	}
	err := p.ReadCloser.Close()
	inflaters.Put(p.ReadCloser)
	p.ReadCloser = nil
	return err
}

// newInflater is the zip reader's deflate decompressor.
func newInflater(r io.Reader) io.ReadCloser {
	fr, ok := inflaters.Get().(io.ReadCloser)
	if ok {
		if err := fr.(flate.Resetter).Reset(r, nil); err != nil {
			fr = nil
		}
	}
	if fr == nil {
		fr = flate.NewReader(r)
	}
	return &pooledInflater{fr}
}

// Entry files are stored (zip method 0) or, as exporters wrote them before,
// deflated Huffman-only (Writer.DeflateEntries): every byte of content
// costs at least one bit, so an honest deflated entry file expands at most
// 8-fold. The verifier refuses a deflated entry file that would expand
// more than MaxExpansion times its compressed size plus expansionSlack
// bytes, and a stored file of any kind whose two sizes differ, before it
// reads a byte of either, so that the work a bundle can demand is bounded
// by its own size: a few megabytes of zip cannot make it inflate and hash
// gigabytes. Other methods are refused (the zip reader knows no other).
const (
	MaxExpansion   = 8
	expansionSlack = 1024
)

// open checks a file's sizes in the zip's directory against max (and,
// when bounded, against MaxExpansion) and opens it.
func (v *verifier) open(name string, max int64, bounded bool) (*zip.File, io.ReadCloser, error) {
	return v.openMember(v.files[name], name, max, bounded)
}

// openMember is open of the member named name, which mb is (nil when the
// zip holds none of that name).
func (v *verifier) openMember(mb *zipMember, name string, max int64, bounded bool) (*zip.File, io.ReadCloser, error) {
	if mb == nil {
		return nil, nil, fmt.Errorf("%s is missing", name)
	}
	f := mb.f
	if f.UncompressedSize64 > uint64(max) {
		return nil, nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", name, f.UncompressedSize64, max)
	}
	switch {
	case f.Method == zip.Store && f.UncompressedSize64 != f.CompressedSize64:
		return nil, nil, fmt.Errorf("%s: stored (zip method 0) with a size of %d bytes and %d bytes of data", name, f.UncompressedSize64, f.CompressedSize64)
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return nil, nil, fmt.Errorf("%s: zip method %d, neither stored (0) nor deflated (8)", name, f.Method)
	case bounded && f.UncompressedSize64 > MaxExpansion*f.CompressedSize64+expansionSlack:
		return nil, nil, fmt.Errorf("%s: %d bytes compressed to %d, more than an entry file expands (%d times, plus %d bytes)",
			name, f.UncompressedSize64, f.CompressedSize64, MaxExpansion, expansionSlack)
	}
	if err := checkDescriptor(v.zip, f); err != nil {
		return nil, nil, fmt.Errorf("%s: %v", name, err)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, nil, zipProblem(name, f, err)
	}
	return f, rc, nil
}

// zipProblem names what an error reading member name (f) from the zip
// means, in terms of the zip: Go's zip reader says "EOF" or "zip: checksum
// error", which do not tell an auditor that the zip's directory or data
// was altered or damaged.
func zipProblem(name string, f *zip.File, err error) error {
	const altered = "the zip was altered or damaged"
	switch {
	case errors.Is(err, zip.ErrChecksum):
		return fmt.Errorf("%s: its data does not match the CRC-32 the zip's directory records for it (%s)", name, altered)
	case errors.Is(err, zip.ErrFormat):
		return fmt.Errorf("%s: the zip's directory does not point at a valid local record of it (%s)", name, altered)
	case errors.Is(err, zip.ErrAlgorithm):
		return fmt.Errorf("%s: the zip's directory gives it an unsupported compression method (%s)", name, altered)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%s: its data ends before the %d bytes the zip's directory declares (%s, or cut short)", name, f.UncompressedSize64, altered)
	}
	var corrupt flate.CorruptInputError
	if errors.As(err, &corrupt) {
		return fmt.Errorf("%s: its deflated data is corrupt at byte %d (%s)", name, int64(corrupt), altered)
	}
	return fmt.Errorf("%s: cannot be read from the zip: %v", name, err)
}

// readFile reads a file of the bundle, at most max bytes, and returns its
// bytes and SHA-256. It allocates the size the zip's directory declares,
// once (the zip reader fails a file that is longer or shorter than that,
// or whose CRC differs).
func (v *verifier) readFile(name string, max int64, bounded bool) ([]byte, [32]byte, error) {
	return v.readMemberInto(nil, v.files[name], name, max, bounded)
}

// readMemberInto is readFile of the member mb (see openMember), reading
// into buf's array when it is large enough (the returned slice then
// shares it).
func (v *verifier) readMemberInto(buf []byte, mb *zipMember, name string, max int64, bounded bool) ([]byte, [32]byte, error) {
	f, rc, err := v.openMember(mb, name, max, bounded)
	if err != nil {
		return nil, [32]byte{}, err
	}
	defer rc.Close()
	if uint64(cap(buf)) >= f.UncompressedSize64 {
		buf = buf[:f.UncompressedSize64]
	} else {
		buf = make([]byte, f.UncompressedSize64)
	}
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, [32]byte{}, zipProblem(name, f, err)
	}
	// One more read reaches the end, where the zip reader checks the CRC
	// and that nothing follows.
	var one [1]byte
	if n, err := rc.Read(one[:]); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			return nil, [32]byte{}, fmt.Errorf("%s: longer than the %d bytes the zip's directory declares (the zip was altered or damaged)", name, f.UncompressedSize64)
		}
		return nil, [32]byte{}, zipProblem(name, f, err)
	}
	return buf, sha256.Sum256(buf), nil
}

// hashFile returns the SHA-256 of a file of the bundle, reading at most
// max bytes and holding none of them.
func (v *verifier) hashFile(name string, max int64, bounded bool) ([32]byte, error) {
	var sum [32]byte
	f, rc, err := v.open(name, max, bounded)
	if err != nil {
		return sum, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, max+1))
	if err != nil {
		return sum, zipProblem(name, f, err)
	}
	if n > max {
		return sum, fmt.Errorf("%s: more than the limit of %d bytes", name, max)
	}
	h.Sum(sum[:0])
	return sum, nil
}
