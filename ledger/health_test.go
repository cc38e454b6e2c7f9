package ledger

import (
	"context"
	"errors"
	"testing"
)

// When the free space of the data directory cannot be read, the reserve
// cannot be enforced: the ledger must not claim to be serving, and trace
// appends are refused (a full disk kills Badger), while the small records
// that let reads and erasures go on (access records, tombstones) are still
// accepted, as in the lower half of the reserve.
func TestUnreadableFreeSpaceIsNotServing(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	defer l.Close()
	l.space.statfs = func(string) (uint64, error) { return 0, errors.New("injected: statfs failed") }
	h := l.Health()
	if h.OK() {
		t.Errorf("Health() with unreadable free space = %+v, OK; want not OK", h)
	}
	if _, err := l.Append(ctx, "default", []Record{span(1, "x")}); !errors.Is(err, ErrNoSpace) {
		t.Errorf("Append(span) with unreadable free space = %v, want ErrNoSpace", err)
	}
	access := Record{Kind: 3, SubKind: 1, RetentionClass: "access", Payload: []byte("a")}
	if _, err := l.Append(ctx, "default", []Record{access}); err != nil {
		t.Errorf("Append(access record) with unreadable free space = %v", err)
	}
}
