//go:build !unix

package ledger

// syncDirectory does nothing where directories cannot be synced (Windows:
// NTFS journals its metadata).
func syncDirectory(string) error { return nil }
