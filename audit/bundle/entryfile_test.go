package bundle

import (
	"strings"
	"testing"
)

// TestIsEntryFile: isEntryFile is name == EntryFile(index).
func TestIsEntryFile(t *testing.T) {
	for _, i := range []uint64{0, 1, 9, 10, 12345678901234567890, ^uint64(0)} {
		name := EntryFile(i)
		if !isEntryFile(name, i) {
			t.Errorf("isEntryFile(%q, %d) = false", name, i)
		}
		for _, other := range []string{name[1:], name + " ", strings.Replace(name, ".json", ".JSON", 1), EntryFile(i + 1), "entries/" + strings.TrimLeft(name[len(EntryDir):], "0")} {
			if other != name && isEntryFile(other, i) {
				t.Errorf("isEntryFile(%q, %d) = true", other, i)
			}
		}
	}
}
