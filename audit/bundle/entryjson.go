package bundle

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseEntry decodes an entry file (one JSON object, docs/BUNDLE.md)
// strictly: each member at most once, none the format does not define,
// each of its type, nothing after the object but whitespace. It accepts
// what encoding/json would decode into an Entry with unknown fields
// disallowed, except duplicate members, and does so several times faster
// (FuzzParseEntry compares the two).
func parseEntry(b []byte, e *Entry) error {
	p := &jsonParser{b: b}
	*e = Entry{}
	p.ws()
	if !p.eat('{') {
		return p.errorf("want an object")
	}
	seen := 0
	p.ws()
	if p.eat('}') {
		return p.end()
	}
	for {
		p.ws()
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if !p.eat(':') {
			return p.errorf("want ':' after %q", key)
		}
		p.ws()
		bit := 0
		switch key {
		case "index":
			bit = 1
			if !p.null() {
				e.Index, err = p.uint()
			}
		case "header":
			bit = 2
			e.Header, err = p.base64()
		case "leaf_hash":
			bit = 4
			err = p.hash((*[32]byte)(&e.LeafHash))
		case "payload":
			bit = 8
			e.Payload, err = p.base64()
		case "salt":
			bit = 16
			e.Salt, err = p.base64()
		case "erased":
			bit = 32
			e.Erased, err = p.bool()
		case "inclusion_proof":
			bit = 64
			e.InclusionProof, err = p.hashes()
		case "decoded":
			bit = 128
			e.Decoded, err = p.value() // null too, as encoding/json keeps it
		case "undecodable":
			bit = 256
			e.Undecodable, err = p.nullableStr()
		default:
			return p.errorf("unknown field %q", key)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if seen&bit != 0 {
			return p.errorf("field %q appears twice", key)
		}
		seen |= bit
		p.ws()
		if p.eat('}') {
			return p.end()
		}
		if !p.eat(',') {
			return p.errorf("want ',' or '}'")
		}
	}
}

type jsonParser struct {
	b      []byte
	i      int
	unique bool // skip refuses an object naming a member twice
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

func (p *jsonParser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// str parses a JSON string.
func (p *jsonParser) str() (string, error) {
	if !p.eat('"') {
		return "", p.errorf("want a string")
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return string([]rune(string(s))), nil // as encoding/json: invalid bytes become U+FFFD
			}
			return string(s), nil
		case c == '\\':
			return p.strSlow(start)
		case c < 0x20:
			return "", p.errorf("control character in a string")
		}
		p.i++
	}
	return "", p.errorf("unterminated string")
}

// strSlow parses the rest of a string that holds escapes.
func (p *jsonParser) strSlow(start int) (string, error) {
	out := append([]byte{}, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return string([]rune(string(out))), nil
			}
			return string(out), nil
		case c < 0x20:
			return "", p.errorf("control character in a string")
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
				return "", p.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if len(p.b)-p.i >= 2 && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					save := p.i
					p.i += 2
					var ok2 bool
					if r2, ok2 = p.hex4(); !ok2 {
						return "", p.errorf("bad \\u escape")
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						out = utf8.AppendRune(out, d)
						continue
					}
					p.i = save
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", p.errorf("bad escape \\%c", esc)
		}
	}
	return "", p.errorf("unterminated string")
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

// nullableStr parses a string or null ("").
func (p *jsonParser) nullableStr() (string, error) {
	if p.null() {
		return "", nil
	}
	return p.str()
}

// uint parses a non-negative integer that fits a uint64.
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
	return strconv.ParseUint(digits, 10, 64)
}

func (p *jsonParser) bool() (bool, error) {
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
		return true, nil
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
		return false, nil
	case p.null():
		return false, nil
	}
	return false, p.errorf("want true or false")
}

// base64 parses a string of standard base64 (as encoding/json decodes
// []byte), or null.
func (p *jsonParser) base64() ([]byte, error) {
	if p.null() {
		return nil, nil
	}
	s, err := p.str()
	if err != nil {
		return nil, err
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(out, []byte(s))
	if err != nil {
		return nil, err
	}
	return out[:n], nil
}

// hash parses 64 hex digits (either case, as Hex.UnmarshalJSON).
func (p *jsonParser) hash(out *[32]byte) error {
	s, err := p.str()
	if err != nil {
		return err
	}
	if len(s) != 64 {
		return fmt.Errorf("want 32 bytes of hex, got %q", s)
	}
	if _, err := hex.Decode(out[:], []byte(s)); err != nil {
		return fmt.Errorf("want 32 bytes of hex, got %q", s)
	}
	return nil
}

// hashes parses an array of hashes, or null.
func (p *jsonParser) hashes() ([]Hex, error) {
	if p.null() {
		return nil, nil
	}
	if !p.eat('[') {
		return nil, p.errorf("want an array")
	}
	out := []Hex{}
	p.ws()
	if p.eat(']') {
		return out, nil
	}
	for {
		p.ws()
		var h Hex
		if err := p.hash((*[32]byte)(&h)); err != nil {
			return nil, err
		}
		out = append(out, h)
		if len(out) > MaxInclusionHashes+1 {
			return nil, errors.New("too many hashes")
		}
		p.ws()
		if p.eat(']') {
			return out, nil
		}
		if !p.eat(',') {
			return nil, p.errorf("want ',' or ']'")
		}
	}
}

// maxValueNesting bounds the nesting of a JSON value, as encoding/json's
// own limit does.
const maxValueNesting = 10000

// noDuplicateMembers checks that b is one JSON value, followed by nothing
// but whitespace, in which no object names a member twice.
func noDuplicateMembers(b []byte) error {
	p := &jsonParser{b: b, unique: true}
	p.ws()
	if err := p.skip(0); err != nil {
		return err
	}
	return p.end()
}

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
		p.i++
		p.ws()
		if p.eat('}') {
			return nil
		}
		var names map[string]bool
		if p.unique {
			names = map[string]bool{}
		}
		for {
			p.ws()
			name, err := p.str()
			if err != nil {
				return err
			}
			if names != nil {
				if names[name] {
					return p.errorf("member %q appears twice", name)
				}
				names[name] = true
			}
			p.ws()
			if !p.eat(':') {
				return p.errorf("want ':'")
			}
			p.ws()
			if err := p.skip(depth + 1); err != nil {
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
	case c == '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return nil
		}
		for {
			p.ws()
			if err := p.skip(depth + 1); err != nil {
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
	case c == '"':
		_, err := p.str()
		return err
	case c == 't' || c == 'f':
		_, err := p.bool()
		return err
	case c == 'n':
		if p.null() {
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
