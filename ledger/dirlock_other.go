//go:build !unix

package ledger

// heldByAnother reports whether another process holds dir's lock. Off
// unix there is no flock to ask: false, so that Badger's own error (which
// says when the lock is held) is reported as itself.
func heldByAnother(dir string, readOnly bool) bool {
	return false
}
