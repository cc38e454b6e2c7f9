//go:build unix

package ledger

import (
	"fmt"
	"os"
)

// syncDirectory fsyncs a directory, so that the entries created, renamed
// or removed in it survive a crash.
func syncDirectory(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
