package bundle

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON files of a bundle are read strictly (docs/BUNDLE.md): UTF-8
// throughout, strings without unpaired surrogate escapes, each member of
// an object named exactly as the format names it and at most once, none
// the format does not define, each of its type (null is no member's
// value), integers in plain decimal from 0 to MaxJSONInt, and nothing
// after the value but whitespace. encoding/json is looser on every one of
// these points (case-insensitive names, a later member overriding an
// earlier one, invalid UTF-8 replaced, null for anything), so a verifier
// built on it would read some bundles differently from one that follows
// the format.

// MaxJSONInt is the largest integer the JSON files of a bundle hold,
// 2^53 - 1, so that a verifier that reads numbers as IEEE 754 doubles (a
// browser) reads every one exactly.
const MaxJSONInt = 1<<53 - 1

// parseEntry decodes an entry file (one JSON object, docs/BUNDLE.md)
// strictly. It accepts only what encoding/json would decode into an Entry
// with unknown fields disallowed, with the same result (FuzzParseEntry
// compares the two), and refuses more, and does so several times faster.
//
// The inclusion proof is read into e.InclusionProof's array when it has
// room, so that a caller reading many entry files may reuse one Entry.
func parseEntry(b []byte, e *Entry) error {
	_, err := parseEntryOpt(b, e, false)
	return err
}

// parseEntryDeferred is parseEntry that may leave the syntax of the
// decoded value unchecked, for a caller that will compare it with a text
// known to be valid: when "decoded" is the file's last member (as
// exporters write it), its value is taken to be everything up to the
// object's closing brace, and decodedAt is its offset in b. The caller
// MUST then either find e.Decoded equal to valid JSON that parseEntry
// would accept (validDecoded) or check the file with parseEntry and take
// its verdict (checkDeferred). decodedAt is -1 when nothing was deferred.
func parseEntryDeferred(b []byte, e *Entry) (decodedAt int, err error) {
	return parseEntryOpt(b, e, true)
}

func parseEntryOpt(b []byte, e *Entry, deferDecoded bool) (decodedAt int, err error) {
	decodedAt = -1
	p := &jsonParser{b: b}
	proof := e.InclusionProof[:0]
	*e = Entry{}
	var have [4]bool // the required members: index, header, leaf_hash, inclusion_proof
	p.ws()
	err = p.object(func(key string) (err error) {
		switch key {
		case "index":
			have[0] = true
			e.Index, err = p.uint()
		case "header":
			have[1] = true
			e.Header, err = p.base64()
		case "leaf_hash":
			have[2] = true
			err = p.hash((*[32]byte)(&e.LeafHash))
		case "payload":
			e.Payload, err = p.base64()
		case "salt":
			e.Salt, err = p.base64()
		case "erased":
			// Present only when true (docs/BUNDLE.md).
			if !p.literal("true") {
				return p.errorf("want true")
			}
			e.Erased = true
		case "inclusion_proof":
			have[3] = true
			e.InclusionProof, err = p.hashes(proof, MaxInclusionHashes)
		case "decoded":
			if deferDecoded {
				if v, ok := p.lastValue(); ok {
					decodedAt, e.Decoded = p.i-len(v), v
					return nil
				}
			}
			e.Decoded, err = p.value() // any JSON value
		case "undecodable":
			e.Undecodable, err = p.str()
		default:
			return p.errorf("unknown field %q", key)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return -1, err
	}
	for i, name := range []string{"index", "header", "leaf_hash", "inclusion_proof"} {
		if !have[i] {
			return -1, fmt.Errorf("member %q is missing", name)
		}
	}
	if err := p.end(); err != nil {
		return -1, err
	}
	return decodedAt, nil
}

// lastValue takes the bytes from p up to the text's last closing brace,
// white space trimmed from both ends, as a value, and leaves p at that
// brace. Whether they are one JSON value is left to the caller.
func (p *jsonParser) lastValue() ([]byte, bool) {
	rest := bytes.TrimRight(p.b[p.i:], " \t\n\r")
	if len(rest) == 0 || rest[len(rest)-1] != '}' {
		return nil, false
	}
	v := bytes.TrimRight(rest[:len(rest)-1], " \t\n\r")
	if len(v) == 0 {
		return nil, false
	}
	p.i += len(v)
	return v, true
}

// validDecoded reports whether a deferred decoded value v is known to be
// what parseEntry accepts, because it equals want, a decoded form the
// verifier rendered (valid JSON, each object's member names distinct),
// and holds too few brackets to nest deeper than maxValueNesting.
func validDecoded(v, want []byte) bool {
	return bytes.Equal(v, want) && bytes.Count(want, []byte{'{'})+bytes.Count(want, []byte{'['}) <= maxValueNesting
}

// checkDeferred checks the decoded value that parseEntryDeferred left
// unchecked at offset at of b, and returns parseEntry's error for b when
// it is not one JSON value that parseEntry accepts (nil when it is).
func checkDeferred(b []byte, at int, v []byte) error {
	p := &jsonParser{b: b, i: at}
	if p.skip(0) == nil && p.i == at+len(v) {
		return nil // the rest of b was checked by parseEntryDeferred
	}
	return parseEntry(b, &Entry{})
}

type jsonParser struct {
	b []byte
	i int
}

func (p *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

func (p *jsonParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *jsonParser) end() error {
	p.ws()
	if p.i != len(p.b) {
		return p.errorf("data after the object")
	}
	return nil
}

// literal consumes word (true, false or null) if it is next.
func (p *jsonParser) literal(word string) bool {
	if len(p.b)-p.i >= len(word) && string(p.b[p.i:p.i+len(word)]) == word {
		p.i += len(word)
		return true
	}
	return false
}

// object parses a JSON object, calling member with each member's name
// (unescaped, compared exactly) when p is at its value; member parses the
// value or returns an error, which object returns as it is (callers name
// the member, once, where a path helps). A name given twice is refused.
func (p *jsonParser) object(member func(name string) error) error {
	return p.members(func(name []byte) error { return member(memberName(name)) })
}

// memberName returns name as a string, without allocating for the names
// and entry kinds the bundle's own files use.
func memberName(name []byte) string {
	switch string(name) { // compiled to comparisons, no conversion
	case "index":
		return "index"
	case "header":
		return "header"
	case "leaf_hash":
		return "leaf_hash"
	case "payload":
		return "payload"
	case "salt":
		return "salt"
	case "erased":
		return "erased"
	case "inclusion_proof":
		return "inclusion_proof"
	case "decoded":
		return "decoded"
	case "undecodable":
		return "undecodable"
	case "kind":
		return "kind"
	case "file":
		return "file"
	case "name":
		return "name"
	case "sha256":
		return "sha256"
	case "span":
		return "span"
	case "version":
		return "version"
	case "tombstone":
		return "tombstone"
	}
	return string(name)
}

// members is object with each name as bytes, valid while p.b is.
func (p *jsonParser) members(member func(name []byte) error) error {
	if !p.eat('{') {
		return p.errorf("want an object")
	}
	p.ws()
	if p.eat('}') {
		return nil
	}
	var few [16][]byte // the names seen, while they are few
	var many map[string]bool
	n := 0
	for {
		p.ws()
		name, err := p.strBytes()
		if err != nil {
			return err
		}
		if n < len(few) {
			for _, s := range few[:n] {
				if bytes.Equal(s, name) {
					return p.errorf("member %q appears twice", name)
				}
			}
			few[n] = name
		} else {
			if many == nil {
				many = make(map[string]bool, 2*len(few))
				for _, s := range few {
					many[string(s)] = true
				}
			}
			if many[string(name)] {
				return p.errorf("member %q appears twice", name)
			}
			many[string(name)] = true
		}
		n++
		p.ws()
		if !p.eat(':') {
			return p.errorf("want ':' after %q", name)
		}
		p.ws()
		if err := member(name); err != nil {
			return err
		}
		p.ws()
		if p.eat('}') {
			return nil
		}
		if !p.eat(',') {
			return p.errorf("want ',' or '}'")
		}
	}
}

// array parses a JSON array, calling elem with each element's position
// when p is at it.
func (p *jsonParser) array(elem func(i int) error) error {
	if !p.eat('[') {
		return p.errorf("want an array")
	}
	p.ws()
	if p.eat(']') {
		return nil
	}
	for i := 0; ; i++ {
		p.ws()
		if err := elem(i); err != nil {
			return err
		}
		p.ws()
		if p.eat(']') {
			return nil
		}
		if !p.eat(',') {
			return p.errorf("want ',' or ']'")
		}
	}
}

// str parses a JSON string.
func (p *jsonParser) str() (string, error) {
	b, err := p.strBytes()
	return string(b), err
}

// strBytes parses a JSON string and returns its bytes, unescaped: a slice
// of p.b when it holds no escape (callers must not keep or change it),
// else a copy.
func (p *jsonParser) strBytes() ([]byte, error) {
	if !p.eat('"') {
		return nil, p.errorf("want a string")
	}
	start := p.i
	// Without an escape the string ends at the next quote: find it and
	// any backslash before it with the vectorised searches, then check
	// the bytes between eight at a time for control characters.
	end := bytes.IndexByte(p.b[start:], '"')
	if end < 0 {
		end = len(p.b) - start
	}
	s := p.b[start : start+end]
	if bs := bytes.IndexByte(s, '\\'); bs >= 0 {
		s = s[:bs]
	}
	if hasControl(s) {
		for p.i < start+len(s) && p.b[p.i] >= 0x20 {
			p.i++
		}
		return nil, p.errorf("control character in a string")
	}
	p.i = start + len(s)
	switch {
	case p.i == len(p.b):
		return nil, p.errorf("unterminated string")
	case p.b[p.i] == '\\':
		return p.strSlow(start)
	}
	p.i++ // the closing quote
	if !utf8.Valid(s) {
		return nil, p.errorf("invalid UTF-8 in a string")
	}
	return s, nil
}

// hasControl reports whether s holds a byte below 0x20, which JSON
// strings may not hold unescaped.
func hasControl(s []byte) bool {
	const highs, below = 0x8080808080808080, 0x20 * 0x0101010101010101
	i := 0
	for ; i+8 <= len(s); i += 8 {
		// A byte below 0x20 borrows in x - 0x20 per byte with its top bit
		// clear in x (the "hasless" test: exact for any bound up to 0x80).
		x := binary.LittleEndian.Uint64(s[i:])
		if (x-below)&^x&highs != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// strSlow parses the rest of a string that holds escapes.
func (p *jsonParser) strSlow(start int) ([]byte, error) {
	out := append([]byte{}, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return nil, p.errorf("invalid UTF-8 in a string")
			}
			return out, nil
		case c < 0x20:
			return nil, p.errorf("control character in a string")
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		p.i++
		if p.i >= len(p.b) {
			break
		}
		esc := p.b[p.i]
		p.i++
		switch esc {
		case '"', '\\', '/':
			out = append(out, esc)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// Only a pair of escapes makes a character; an unpaired one
				// is refused (encoding/json would read U+FFFD, a browser a
				// lone UTF-16 unit).
				r2 := rune(-1)
				if len(p.b)-p.i >= 2 && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return nil, p.errorf("bad \\u escape")
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					return nil, p.errorf("unpaired surrogate escape in a string")
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, p.errorf("bad escape \\%c", esc)
		}
	}
	return nil, p.errorf("unterminated string")
}

func (p *jsonParser) hex4() (rune, bool) {
	if len(p.b)-p.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}

// uint parses a non-negative integer in plain decimal, at most
// MaxJSONInt.
func (p *jsonParser) uint() (uint64, error) {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	digits := string(p.b[start:p.i])
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || p.b[p.i] == '-') {
		return 0, p.errorf("want an unsigned integer")
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, p.errorf("want an unsigned integer")
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > MaxJSONInt {
		return 0, p.errorf("integer %s is more than %d", digits, uint64(MaxJSONInt))
	}
	return n, nil
}

// bool parses true or false.
func (p *jsonParser) bool() (bool, error) {
	switch {
	case p.literal("true"):
		return true, nil
	case p.literal("false"):
		return false, nil
	}
	return false, p.errorf("want true or false")
}

// base64 parses a string of standard base64 with padding in its one
// canonical spelling: no line breaks (which encoding/json would skip) and
// the unused bits of the last character zero (RFC 4648 §3.5), so that one
// byte string has one text and every verifier reads the same bytes.
func (p *jsonParser) base64() ([]byte, error) {
	s, err := p.strBytes()
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(s, '\r') >= 0 || bytes.IndexByte(s, '\n') >= 0 { // vectorised, unlike ContainsAny
		return nil, errors.New("a line break in base64")
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Strict().Decode(out, s)
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// hash parses 64 hex digits (either case, as Hex.UnmarshalJSON).
func (p *jsonParser) hash(out *[32]byte) error {
	// The common case, 64 hex digits between quotes, needs none of
	// strBytes's checks (escapes, control characters, UTF-8); anything
	// else takes the general path, which accepts or refuses it as before.
	if end := p.i + 65; end < len(p.b) && p.b[p.i] == '"' && p.b[end] == '"' {
		if _, err := hex.Decode(out[:], p.b[p.i+1:end]); err == nil {
			p.i = end + 1
			return nil
		}
	}
	s, err := p.strBytes()
	if err != nil {
		return err
	}
	if len(s) != 64 {
		return fmt.Errorf("want 32 bytes of hex, got %q", s)
	}
	if _, err := hex.Decode(out[:], s); err != nil {
		return fmt.Errorf("want 32 bytes of hex, got %q", s)
	}
	return nil
}

// hashes parses an array of hashes, appending them to out, refusing more
// than max+1 of them (the caller names what more than max means).
func (p *jsonParser) hashes(out []Hex, max int) ([]Hex, error) {
	if out == nil {
		out = make([]Hex, 0, 32) // a proof in a tree of up to 2^32 entries
	}
	err := p.array(func(i int) error {
		if i > max {
			return errors.New("too many hashes")
		}
		var h Hex
		if err := p.hash((*[32]byte)(&h)); err != nil {
			return err
		}
		out = append(out, h)
		return nil
	})
	return out, err
}

// maxValueNesting bounds the nesting of a JSON value, as encoding/json's
// own limit does.
const maxValueNesting = 10000

// value checks one JSON value's syntax and returns its bytes.
func (p *jsonParser) value() ([]byte, error) {
	start := p.i
	if err := p.skip(0); err != nil {
		return nil, err
	}
	return p.b[start:p.i], nil
}

func (p *jsonParser) skip(depth int) error {
	if depth > maxValueNesting {
		return p.errorf("nested too deep")
	}
	if p.i >= len(p.b) {
		return p.errorf("want a value")
	}
	switch c := p.b[p.i]; {
	case c == '{':
		return p.members(func([]byte) error { return p.skip(depth + 1) })
	case c == '[':
		return p.array(func(int) error { return p.skip(depth + 1) })
	case c == '"':
		_, err := p.strBytes()
		return err
	case c == 't' || c == 'f':
		_, err := p.bool()
		return err
	case c == 'n':
		if p.literal("null") {
			return nil
		}
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	}
	return p.errorf("want a value")
}

// number checks a JSON number.
func (p *jsonParser) number() error {
	p.eat('-')
	switch {
	case p.eat('0'):
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return p.errorf("bad number")
	}
	if p.eat('.') && !p.digits() {
		return p.errorf("bad number")
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if !p.digits() {
			return p.errorf("bad number")
		}
	}
	return nil
}

func (p *jsonParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// ParseEntry reads an entry file strictly, as the verifier does
// (docs/BUNDLE.md): for tools that read bundles, and for the console's
// tests, which check that the browser verifier reads entry files alike.
func ParseEntry(b []byte) (*Entry, error) {
	e := &Entry{}
	if err := parseEntry(b, e); err != nil {
		return nil, err
	}
	return e, nil
}
