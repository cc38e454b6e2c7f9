package ledger

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// A batch refused as too large for one storage transaction is told which
// limit it exceeds: here the payload bytes, while its keys and its bytes
// as Badger counts them (value-log pointers) fit.
func TestRefusalNamesTheLimitExceeded(t *testing.T) {
	l := openTest(t, t.TempDir())
	defer l.Close()
	_, err := l.Append(context.Background(), "default", tooLarge(""))
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Append(1000 spans of 70 KiB) = %v, want ErrInvalid", err)
	}
	if !strings.Contains(err.Error(), "payloads") || !strings.Contains(err.Error(), "67108864") {
		t.Errorf("Append(1000 spans of 70 KiB) = %q; want it to name the 64 MiB (67108864 bytes) limit of payloads", err)
	}
}
