package bundle

import (
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// VerifyFile verifies the bundle at path with the verifier key in keyPath
// (a note verifier key, as in the log's log.pub) and, if pinnedPath is not
// empty, against the signed checkpoint in it. It writes the report to w and
// returns the report; err is for files that cannot be read.
func VerifyFile(path, keyPath, pinnedPath string, w io.Writer) (*Report, error) {
	key, err := ReadVerifierKey(keyPath)
	if err != nil {
		return nil, err
	}
	var pinned []byte
	if pinnedPath != "" {
		if pinned, err = readLimited(pinnedPath, MaxSmallFileBytes); err != nil {
			return nil, fmt.Errorf("pinned checkpoint: %w", err)
		}
	}
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep := Verify(f, size, key, pinned)
	rep.Write(w)
	return rep, nil
}

// VerifyReceiptFile checks the erasure receipt at receiptPath with the
// verifier key in keyPath (CheckReceipt): its signature and checkpoint
// and, if bundlePath is not empty, each tombstone part it names against
// the entries of that evidence bundle (BundleParts). It writes the report
// to w and returns it; err is for files that cannot be read.
func VerifyReceiptFile(receiptPath, keyPath, bundlePath string, w io.Writer) (*ReceiptReport, error) {
	key, err := ReadVerifierKey(keyPath)
	if err != nil {
		return nil, err
	}
	file, err := ReadReceiptFile(receiptPath)
	if err != nil {
		return nil, err
	}
	var parts PartSource
	if bundlePath != "" {
		f, size, err := openSized(bundlePath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if parts, err = BundleParts(f, size); err != nil {
			return nil, fmt.Errorf("bundle %s: %w", bundlePath, err)
		}
	}
	rep := CheckReceipt(file, key, parts)
	rep.Write(w)
	return rep, nil
}

// openSized opens a file and says its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// ReadVerifierKey reads a note verifier key file (the log's log.pub).
func ReadVerifierKey(path string) (note.Verifier, error) {
	kb, err := readLimited(path, maxVerifierKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(kb)))
	if err != nil {
		return nil, fmt.Errorf("verifier key %s: %w", path, err)
	}
	return key, nil
}

// maxVerifierKeyBytes bounds a verifier key file: a key is about a
// hundred bytes.
const maxVerifierKeyBytes = 4 << 10

// ReadReceiptFile reads a receipt file, refusing one of more than
// MaxReceiptBytes without reading it whole.
func ReadReceiptFile(path string) ([]byte, error) {
	return readLimited(path, MaxReceiptBytes)
}

// readLimited reads a file of at most max bytes, refusing a longer one
// (or an endless pipe) after max+1 bytes.
func readLimited(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > max {
		return nil, fmt.Errorf("%s: more than %d bytes, more than the file may hold", path, max)
	}
	return b, nil
}
