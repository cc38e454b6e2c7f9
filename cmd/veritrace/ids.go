package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"
)

// traceIDForms names the forms a trace id is taken in, for help and errors.
const traceIDForms = "32 hex digits, or the 24-character base64 that receipts and JSON output show"

// parseTraceID parses a trace id given as what (a flag or an argument's
// name): 32 hex digits (as `query` prints them) or the standard base64 of
// its 16 bytes (as proto JSON, receipts and bundles show them).
func parseTraceID(what, s string) ([]byte, error) {
	return parseID(what, s, 16, traceIDForms)
}

// parseID parses n bytes given as 2n hex digits or as their standard
// base64 (padded or not).
func parseID(what, s string, n int, forms string) ([]byte, error) {
	if len(s) == 2*n {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(s); err == nil && len(b) == n {
			return b, nil
		}
	}
	return nil, fmt.Errorf("%s %q: want %s", what, s, forms)
}

// timeForms names the forms a time flag takes, for help and errors.
const timeForms = "a date (2026-11-21, UTC midnight) or an RFC 3339 time (2026-11-21T09:00:00Z, 2026-11-21T10:00:00+01:00)"

// parseTimeFlag parses the value of a time flag (--from, --to): a date,
// meaning its midnight UTC, or an RFC 3339 time. A bad value is named
// with its flag and the forms taken.
func parseTimeFlag(flag, s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q: want %s", flag, s, timeForms)
}
