package bundle

import (
	"errors"
	"fmt"
	"time"

	"github.com/veritrace/veritrace/ledger/format"
)

// The strict readers of manifest.json, consistency.json and tombstone
// payloads (docs/BUNDLE.md, "Every JSON file of a bundle"), on the parser
// of entryjson.go.

// requiredMembers fails unless every one of names was seen.
func requiredMembers(seen map[string]bool, names ...string) error {
	for _, n := range names {
		if !seen[n] {
			return fmt.Errorf("member %q is missing", n)
		}
	}
	return nil
}

// named wraps a member's error with its name.
func named(name string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// at wraps an array element's error with its position, building no
// text unless there is an error.
func at(i int, err error) error {
	if err != nil {
		return fmt.Errorf("[%d]: %w", i, err)
	}
	return nil
}

// parseManifest decodes manifest.json strictly: every member but
// consistency and range present, none other, each of its type.
func parseManifest(b []byte, m *Manifest) error {
	p := &jsonParser{b: b}
	*m = Manifest{}
	seen := map[string]bool{}
	p.ws()
	err := p.object(func(key string) error {
		seen[key] = true
		var err error
		switch key {
		case "format":
			m.Format, err = p.str()
		case "origin":
			m.Origin, err = p.str()
		case "tenant":
			m.Tenant, err = p.str()
		case "log_key":
			m.LogKey, err = p.str()
		case "created_at":
			m.CreatedAt, err = p.time()
		case "selector":
			err = p.selector(&m.Selector)
		case "tree_size":
			m.TreeSize, err = p.uint()
		case "traces":
			m.Traces = []string{}
			err = p.array(func(i int) error {
				if i == MaxEntries {
					return fmt.Errorf("more than %d traces", MaxEntries)
				}
				s, err := p.str()
				m.Traces = append(m.Traces, s)
				return err
			})
		case "entries":
			m.Entries = []EntryRef{}
			err = p.array(func(i int) error {
				if i == MaxEntries {
					return fmt.Errorf("more than %d entries", MaxEntries)
				}
				var e EntryRef
				err := p.entryRef(&e)
				m.Entries = append(m.Entries, e)
				return at(i, err)
			})
		case "consistency":
			m.Consistency = &Consistency{}
			err = p.consistencyRef(m.Consistency)
		case "range":
			m.Range = &Range{}
			err = p.rangeRef(m.Range)
		case "files":
			m.Files = []FileDigest{}
			err = p.array(func(i int) error {
				if i == MaxEntries+4 {
					return fmt.Errorf("more than %d files", MaxEntries+4)
				}
				var fd FileDigest
				err := p.fileDigest(&fd)
				m.Files = append(m.Files, fd)
				return at(i, err)
			})
		default:
			return p.errorf("unknown field %q", key)
		}
		return named(key, err)
	})
	if err != nil {
		return err
	}
	if err := p.end(); err != nil {
		return err
	}
	return requiredMembers(seen, "format", "origin", "tenant", "log_key", "created_at", "selector", "tree_size", "traces", "entries", "files")
}

// fields parses an object whose members are the keys of parse, each read
// by its function; the members named in required must be present.
func (p *jsonParser) fields(parse map[string]func() error, required ...string) error {
	seen := make(map[string]bool, len(parse))
	err := p.object(func(key string) error {
		f := parse[key]
		if f == nil {
			return p.errorf("unknown field %q", key)
		}
		seen[key] = true
		return named(key, f())
	})
	if err != nil {
		return err
	}
	return requiredMembers(seen, required...)
}

// entryRef and fileDigest read the manifest's most numerous objects (two
// an entry) as fields does, with no map an object.
func (p *jsonParser) entryRef(e *EntryRef) error {
	var seen [3]bool
	err := p.object(func(key string) (err error) {
		switch key {
		case "index":
			seen[0] = true
			e.Index, err = p.uint()
		case "kind":
			seen[1] = true
			var kind []byte
			kind, err = p.strBytes()
			e.Kind = memberName(kind)
		case "file":
			seen[2] = true
			e.File, err = p.str()
		default:
			return p.errorf("unknown field %q", key)
		}
		return named(key, err)
	})
	if err != nil {
		return err
	}
	return requiredOf(seen[:], "index", "kind", "file")
}

func (p *jsonParser) fileDigest(fd *FileDigest) error {
	var seen [2]bool
	err := p.object(func(key string) (err error) {
		switch key {
		case "name":
			seen[0] = true
			fd.Name, err = p.str()
		case "sha256":
			seen[1] = true
			fd.SHA256, err = p.str()
		default:
			return p.errorf("unknown field %q", key)
		}
		return named(key, err)
	})
	if err != nil {
		return err
	}
	return requiredOf(seen[:], "name", "sha256")
}

// requiredOf is requiredMembers for members tracked by position.
func requiredOf(seen []bool, names ...string) error {
	for i, n := range names {
		if !seen[i] {
			return fmt.Errorf("member %q is missing", n)
		}
	}
	return nil
}

func (p *jsonParser) consistencyRef(c *Consistency) error {
	return p.fields(map[string]func() error{
		"old_size": func() (err error) { c.OldSize, err = p.uint(); return },
		"file":     func() (err error) { c.File, err = p.str(); return },
	}, "old_size", "file")
}

func (p *jsonParser) rangeRef(r *Range) error {
	return p.fields(map[string]func() error{
		"first": func() (err error) { r.First, err = p.uint(); return },
		"end":   func() (err error) { r.End, err = p.uint(); return },
		"file":  func() (err error) { r.File, err = p.str(); return },
		"proof": func() (err error) { r.Proof, err = p.hashes(nil, MaxInclusionHashes); return },
	}, "first", "end", "file", "proof")
}

// selector parses the manifest's selector: a member present is a
// condition, so a string is never empty and errors_only is true.
func (p *jsonParser) selector(s *Selector) error {
	return p.object(func(key string) error {
		var err error
		str := func(out *string) {
			if *out, err = p.str(); err == nil && *out == "" {
				err = errors.New("empty; a condition not given is absent")
			}
		}
		switch key {
		case "trace_id":
			str(&s.TraceID)
		case "session_id":
			str(&s.SessionID)
		case "subject_id":
			str(&s.SubjectID)
		case "from":
			s.From, err = p.time()
		case "to":
			s.To, err = p.time()
		case "version_id":
			str(&s.VersionID)
		case "kind":
			str(&s.Kind)
		case "model":
			str(&s.Model)
		case "errors_only":
			if !p.literal("true") {
				return p.errorf("errors_only: want true")
			}
			s.ErrorsOnly = true
		default:
			return p.errorf("unknown field %q", key)
		}
		return named(key, err)
	})
}

// time parses a string holding an RFC 3339 time (ParseTime).
func (p *jsonParser) time() (time.Time, error) {
	s, err := p.str()
	if err != nil {
		return time.Time{}, err
	}
	return ParseTime(s)
}

// ParseTime parses a time of a bundle's JSON: RFC 3339 in exactly the
// form YYYY-MM-DDTHH:MM:SS, then optionally '.' and 1 to 9 digits of a
// second, then Z or an offset ±HH:MM; a valid date, hours 00-23, minutes
// and seconds 00-59 (no leap second), offset hours 00-23. The upper-case
// T and Z only.
func ParseTime(s string) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time (YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM))", s)
	}
	digits := func(i, n int) (int, bool) {
		if i+n > len(s) {
			return 0, false
		}
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = 10*v + int(c-'0')
		}
		return v, true
	}
	at := func(i int, c byte) bool { return i < len(s) && s[i] == c }
	year, ok1 := digits(0, 4)
	month, ok2 := digits(5, 2)
	day, ok3 := digits(8, 2)
	hour, ok4 := digits(11, 2)
	minute, ok5 := digits(14, 2)
	sec, ok6 := digits(17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && at(4, '-') && at(7, '-') && at(10, 'T') && at(13, ':') && at(16, ':')) {
		return bad()
	}
	if month < 1 || month > 12 || day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() ||
		hour > 23 || minute > 59 || sec > 59 {
		return bad()
	}
	i, nanos := 19, 0
	if at(i, '.') {
		n := 0
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if n++; n > 9 {
				return bad()
			}
			nanos = 10*nanos + int(s[i]-'0')
		}
		if n == 0 {
			return bad()
		}
		for ; n < 9; n++ {
			nanos *= 10
		}
	}
	offset := 0
	switch {
	case at(i, 'Z') && i+1 == len(s):
	case (at(i, '+') || at(i, '-')) && i+6 == len(s) && at(i+3, ':'):
		oh, ok1 := digits(i+1, 2)
		om, ok2 := digits(i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return bad()
		}
		if offset = oh*3600 + om*60; s[i] == '-' {
			offset = -offset
		}
	default:
		return bad()
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, time.UTC).Add(-time.Duration(offset) * time.Second)
	if offset != 0 {
		t = t.In(time.FixedZone("", offset))
	}
	return t, nil
}

// parseConsistency decodes consistency.json strictly: old_size, new_size
// and proof present; old_checkpoint optional (format 2 and later).
func parseConsistency(b []byte, c *ConsistencyProof) error {
	p := &jsonParser{b: b}
	*c = ConsistencyProof{}
	p.ws()
	err := p.fields(map[string]func() error{
		"old_size":       func() (err error) { c.OldSize, err = p.uint(); return },
		"new_size":       func() (err error) { c.NewSize, err = p.uint(); return },
		"proof":          func() (err error) { c.Proof, err = p.hashes(nil, MaxConsistencyHashes); return },
		"old_checkpoint": func() (err error) { c.OldCheckpoint, err = p.str(); return },
	}, "old_size", "new_size", "proof")
	if err != nil {
		return err
	}
	return p.end()
}

// parseTombstone reads what the verifiers of bundles and receipts need of
// a tombstone's payload (docs/FORMAT.md §2.2): a JSON object whose reason
// is a string and whose erased is an array (null read as empty) of objects
// with an index and a leaf_hash string; request_id (a string), held (an
// array of objects with an index, a hold_id and a case_ref) and part and
// parts (integers) when present. Members are matched by their exact names,
// none may appear twice, and members neither reads (legal_basis, ticket,
// why, requested_by, and any added later) are ignored once their syntax is
// checked, at any level.
func parseTombstone(b []byte) (*format.Tombstone, error) {
	p := &jsonParser{b: b}
	ts := &format.Tombstone{}
	seen := map[string]bool{}
	p.ws()
	err := p.object(func(key string) error {
		seen[key] = true
		var err error
		switch key {
		case "reason":
			ts.Reason, err = p.str()
		case "erased":
			if p.literal("null") {
				return nil
			}
			err = p.array(func(i int) error {
				var te format.TombstoneEntry
				entrySeen := map[string]bool{}
				err := p.object(func(key string) error {
					entrySeen[key] = true
					var err error
					switch key {
					case "index":
						te.Index, err = p.uint()
					case "leaf_hash":
						te.LeafHash, err = p.str()
					default:
						err = p.skip(0)
					}
					return named(key, err)
				})
				if err == nil {
					err = requiredMembers(entrySeen, "index", "leaf_hash")
				}
				ts.Erased = append(ts.Erased, te)
				return at(i, err)
			})
		case "request_id":
			ts.RequestID, err = p.str()
		case "part", "parts":
			var n uint64
			if n, err = p.uint(); err == nil && n > MaxEntries {
				err = fmt.Errorf("%d is more than %d", n, MaxEntries)
			}
			if key == "part" {
				ts.Part = int(n)
			} else {
				ts.Parts = int(n)
			}
		case "held":
			if p.literal("null") {
				return nil
			}
			err = p.array(func(i int) error {
				var he format.HeldEntry
				err := p.heldEntry(&he)
				ts.Held = append(ts.Held, he)
				return at(i, err)
			})
		default:
			err = p.skip(0)
		}
		return named(key, err)
	})
	if err != nil {
		return nil, err
	}
	if err := p.end(); err != nil {
		return nil, err
	}
	if err := requiredMembers(seen, "reason", "erased"); err != nil {
		return nil, err
	}
	return ts, nil
}

// heldEntry parses a held entry of a tombstone or a format 1 receipt:
// index, hold_id and case_ref, no other member.
func (p *jsonParser) heldEntry(he *format.HeldEntry) error {
	return p.fields(map[string]func() error{
		"index":    func() (err error) { he.Index, err = p.uint(); return },
		"hold_id":  func() (err error) { he.HoldID, err = p.str(); return },
		"case_ref": func() (err error) { he.CaseRef, err = p.str(); return },
	}, "index", "hold_id", "case_ref")
}
