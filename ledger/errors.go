package ledger

import (
	"errors"
	"fmt"

	"github.com/veritrace/veritrace/ledger/format"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrNotFound: no such entry, version, tenant or checkpoint.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: a record with the same identity exists with
	// different content.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalid: the request is malformed (bad tenant name, index out of
	// range, empty batch ...).
	ErrInvalid = errors.New("invalid argument")
	// ErrKeyDestroyed: the payload's data key was destroyed (erased).
	ErrKeyDestroyed = errors.New("data key destroyed")
	// ErrPrecondition: an AppendUnless whose precondition failed; nothing
	// was written.
	ErrPrecondition = errors.New("append precondition failed")
	// ErrClosed: the ledger is closed or closing.
	ErrClosed = errors.New("ledger closed")
	// ErrUnknownFormat: the data directory holds an unknown format version.
	ErrUnknownFormat = errors.New("unknown data format version")
	// ErrKeyMismatch: the keys given do not match the data directory.
	ErrKeyMismatch = errors.New("keys do not match the data")
)

// RecordError says which record of an Append call failed and why.
type RecordError struct {
	Record int // position in the Append call
	Err    error
}

func (e *RecordError) Error() string { return fmt.Sprintf("record %d: %v", e.Record, e.Err) }
func (e *RecordError) Unwrap() error { return e.Err }

// MissingVersionError is the cause of a RecordError for a reference to a
// version that is not registered (with that kind) in the tenant's log.
type MissingVersionError struct {
	Kind format.VersionKind
	ID   [32]byte
}

func (e *MissingVersionError) Error() string {
	return fmt.Sprintf("%s version %x is not registered", e.Kind, e.ID)
}

// ConflictError is the cause of a RecordError for a record whose identity
// exists with different content.
type ConflictError struct {
	Kind  format.Kind
	Index uint64 // index of the existing entry
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("a %s with the same identity exists at index %d with different content", e.Kind, e.Index)
}

func (e *ConflictError) Unwrap() error { return ErrAlreadyExists }

// ErrFailed: a write to storage failed in a way that leaves its outcome
// unknown (a failed commit or sync). The ledger accepts no more writes
// until it is reopened, which recovers from what is on disk.
var ErrFailed = errors.New("ledger failed")

// ErrLocked: another process (a running server) holds a database's
// directory lock; the message names the directory.
var ErrLocked = errors.New("database locked by another process")

// ErrNotClosedCleanly: a read-only open found a database a crash left
// behind; opening it for writing (a server start) recovers it.
var ErrNotClosedCleanly = errors.New("database not closed cleanly")

// ErrNoSpace: free disk space is below the reserve; see SpaceError.
var ErrNoSpace = errors.New("disk space below the reserve")

// SpaceError refuses a write while the free space of the data directory's
// filesystem is below the reserve (Options.MinFreeBytes).
type SpaceError struct {
	Free, Required uint64 // bytes
	Err            error  // set when the free space cannot be read
}

func (e *SpaceError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("the free disk space cannot be read, so the reserve of %d bytes cannot be kept; appends are refused until it can be read", e.Required)
	}
	return fmt.Sprintf("disk space below the reserve: %d bytes free, %d required", e.Free, e.Required)
}

func (e *SpaceError) Unwrap() error { return ErrNoSpace }

// ErrBucketExpired: a record's expiry bucket (the data keys of its tenant,
// day and retention class) was retired by a sweep before it could be
// committed; see BucketExpiredError.
var ErrBucketExpired = errors.New("expiry bucket already expired")

// BucketExpiredError refuses a record of a day whose expiry bucket a sweep
// has expired. Records are sealed under a key of their appended_at day,
// which never goes back; this happens only when a sweep ran while the
// clock was far ahead and the clock was then set back. Records of that
// day and class cannot be stored until the clock passes it.
type BucketExpiredError struct {
	Day   uint32 // days since 1970-01-01 UTC
	Class string
}

func (e *BucketExpiredError) Error() string {
	return fmt.Sprintf("the retention class %s of day %s was already expired by a sweep (the server clock is behind the time of that sweep); such records cannot be stored until the clock passes that day",
		e.Class, dayStart(int64(e.Day)).Format("2006-01-02"))
}

func (e *BucketExpiredError) Unwrap() error { return ErrBucketExpired }
