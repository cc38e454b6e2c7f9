package otlp

import (
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// readJSON reads a JSON text into the Go values encoding/json.Unmarshal
// gives an `any` (nil, bool, float64, string, []any, map[string]any) and
// reports whether it is valid JSON. It gives exactly what Unmarshal gives
// and fails exactly when Unmarshal fails (FuzzParseJSON compares them):
// invalid UTF-8 reads as one U+FFFD per bad byte, a lone UTF-16 surrogate
// escape as U+FFFD, the last of duplicate keys wins, a number out of
// float64's range or nesting deeper than 10,000 fails.
//
// It exists for speed: GenAI senders put whole conversations in JSON
// strings (gen_ai.input.messages), and Unmarshal scans every string twice
// and copies it. Strings without escapes or non-ASCII bytes here are
// slices of s, not copies.
//
// Unlike Unmarshal it also fails when the Go values would take more than
// about 4 times the text plus 1 MiB of memory (an estimate it keeps as it
// reads): a sender's JSON string is untrusted, and a text of empty
// objects or small numbers builds values of 40 to 80 times its size. Real
// messages (mostly text) take far less; a string over the bound is kept
// as the string it is.
func readJSON(s string) (any, bool) {
	return readJSONWithin(s, 4*len(s)+1<<20)
}

// readJSONWithin is readJSON with a memory budget in bytes (the estimate
// of jsonParser.spend).
func readJSONWithin(s string, budget int) (any, bool) {
	p := jsonParser{s: s, budget: budget}
	v, ok := p.value(0)
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.i == len(s)
}

// maxReadJSONDepth is encoding/json's nesting limit.
const maxReadJSONDepth = 10000

type jsonParser struct {
	s      string
	i      int
	budget int // bytes the values may still take (estimated)
}

// Estimated bytes of the values built: a map and each member, a slice and
// each element, a boxed number or string.
const (
	costObject  = 64
	costMember  = 48
	costArray   = 32
	costElement = 16
	costScalar  = 16
)

// spend takes n bytes from the budget and reports whether some is left.
func (p *jsonParser) spend(n int) bool {
	p.budget -= n
	return p.budget >= 0
}

func (p *jsonParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(depth int) (any, bool) {
	p.space()
	if p.i >= len(p.s) || !p.spend(costScalar) {
		return nil, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		if depth >= maxReadJSONDepth {
			return nil, false
		}
		return p.object(depth + 1)
	case c == '[':
		if depth >= maxReadJSONDepth {
			return nil, false
		}
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.number()
	case strings.HasPrefix(p.s[p.i:], "true"):
		p.i += 4
		return true, true
	case strings.HasPrefix(p.s[p.i:], "false"):
		p.i += 5
		return false, true
	case strings.HasPrefix(p.s[p.i:], "null"):
		p.i += 4
		return nil, true
	}
	return nil, false
}

func (p *jsonParser) object(depth int) (any, bool) {
	p.i++ // {
	if !p.spend(costObject) {
		return nil, false
	}
	m := map[string]any{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return m, true
	}
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return nil, false
		}
		k, ok := p.str()
		if !ok {
			return nil, false
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		if !p.spend(costMember) {
			return nil, false
		}
		m[k.(string)] = v
		if more, ok := p.next('}'); !ok {
			return nil, false
		} else if !more {
			return m, true
		}
	}
}

func (p *jsonParser) array(depth int) (any, bool) {
	p.i++ // [
	if !p.spend(costArray) {
		return nil, false
	}
	a := make([]any, 0)
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value(depth)
		if !ok {
			return nil, false
		}
		if !p.spend(costElement) {
			return nil, false
		}
		a = append(a, v)
		if more, ok := p.next(']'); !ok {
			return nil, false
		} else if !more {
			return a, true
		}
	}
}

// next reads what follows a member or an element: a comma (more follow)
// or the closing bracket.
func (p *jsonParser) next(closing byte) (more, ok bool) {
	p.space()
	if p.i >= len(p.s) {
		return false, false
	}
	switch p.s[p.i] {
	case ',':
		p.i++
		return true, true
	case closing:
		p.i++
		return false, true
	}
	return false, false
}

// number reads a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?)
// as a float64.
func (p *jsonParser) number() (any, bool) {
	start := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if p.s[p.i] == '-' {
		p.i++
	}
	if p.i < len(p.s) && p.s[p.i] == '0' {
		p.i++
	} else if digits() == 0 {
		return nil, false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if digits() == 0 {
			return nil, false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	f, err := strconv.ParseFloat(p.s[start:p.i], 64)
	if err != nil {
		return nil, false
	}
	return f, true
}

// str reads a JSON string. One without escapes, control characters or
// invalid UTF-8 is returned as a slice of the input.
func (p *jsonParser) str() (any, bool) {
	p.i++ // "
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c == '\\' || c < 0x20:
			return p.strSlow(start)
		case c < utf8.RuneSelf:
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return p.strSlow(start)
			}
			p.i += size
		}
	}
	return nil, false
}

// strSlow reads the rest of a string that starts at start and needs
// unescaping or repair, as encoding/json does.
func (p *jsonParser) strSlow(start int) (any, bool) {
	var b strings.Builder
	b.Grow(p.i - start + 16)
	b.WriteString(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), true
		case c < 0x20:
			return nil, false
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return nil, false
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b.WriteByte(e)
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return nil, false
				}
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; a lone half reads as U+FFFD,
					// and what follows it is read on its own.
					if strings.HasPrefix(p.s[p.i:], `\u`) {
						save := p.i
						p.i += 2
						r2, ok := p.hex4()
						if ok {
							if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
								b.WriteRune(d)
								continue
							}
						}
						p.i = save
					}
					r = utf8.RuneError
				}
				b.WriteRune(r)
			default:
				return nil, false
			}
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteRune(utf8.RuneError)
			} else {
				b.WriteString(p.s[p.i : p.i+size])
			}
			p.i += size
		}
	}
	return nil, false
}

// hex4 reads the four hex digits of a \u escape.
func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(p.s[p.i : p.i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	p.i += 4
	return r, true
}
