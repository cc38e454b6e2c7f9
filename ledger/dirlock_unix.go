//go:build unix

package ledger

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// heldByAnother reports whether another open of dir (another process, or
// another open in this one) holds the flock Badger takes on a database's
// directory: exclusive for writing, shared for reading only. It asks the
// kernel, with a non-blocking flock of the same kind Badger takes, and
// answers true only for EWOULDBLOCK; any other outcome (the lock taken and
// released at once, ENOLCK on a filesystem without locks, EINTR, a
// directory that cannot be opened) is false, so that Badger's own error is
// reported as itself.
func heldByAnother(dir string, readOnly bool) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	how := unix.LOCK_EX | unix.LOCK_NB
	if readOnly {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	err = unix.Flock(int(f.Fd()), how)
	if err == nil {
		unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false
	}
	return errors.Is(err, unix.EWOULDBLOCK)
}
