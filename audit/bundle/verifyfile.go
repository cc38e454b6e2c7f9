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
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	key, err := note.NewVerifier(strings.TrimSpace(string(kb)))
	if err != nil {
		return nil, fmt.Errorf("verifier key %s: %w", keyPath, err)
	}
	var pinned []byte
	if pinnedPath != "" {
		if pinned, err = os.ReadFile(pinnedPath); err != nil {
			return nil, fmt.Errorf("pinned checkpoint: %w", err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	rep := Verify(f, fi.Size(), key, pinned)
	rep.Write(w)
	return rep, nil
}
