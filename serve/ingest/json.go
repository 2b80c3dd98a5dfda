package ingest

import (
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ErrSyntax is wrapped by every error about malformed JSON; the message says
// what was found at which byte offset.
var ErrSyntax = errors.New("ingest: malformed JSON")

// maxDepth bounds the nesting of JSON values the scanner skips, so that a
// hostile message cannot exhaust the stack.
const maxDepth = 256

// syntaxError is a JSON syntax error at a byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string {
	return fmt.Sprintf("%v at offset %d: %s", ErrSyntax, e.off, e.msg)
}

func (e *syntaxError) Unwrap() error { return ErrSyntax }

// scanner is a small JSON tokenizer over one message. It validates what it
// reads as strictly as encoding/json (RFC 8259 grammar, no control characters
// in strings, valid escapes) and decodes strings the same way (invalid UTF-8
// and lone surrogates become U+FFFD). It exists because encoding/json with a
// map per sample is several times too slow for the scoring stream.
type scanner struct {
	data    []byte
	pos     int
	scratch []byte // unescaped strings; reused
}

func (s *scanner) errAt(off int, msg string) error {
	return &syntaxError{off: off, msg: msg}
}

// unexpected reports the byte at s.pos (or the end of input) where want was
// expected.
func (s *scanner) unexpected(want string) error {
	if s.pos >= len(s.data) {
		return s.errAt(s.pos, "unexpected end of input, want "+want)
	}
	return s.errAt(s.pos, fmt.Sprintf("invalid character %s, want %s", quoteByte(s.data[s.pos]), want))
}

func quoteByte(c byte) string {
	if c < utf8.RuneSelf {
		return strconv.QuoteRune(rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}

// peek skips white space and returns the next byte without consuming it, or 0
// at the end of input.
func (s *scanner) peek() byte {
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; c {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return c
		}
	}
	return 0
}

// eof reports whether only white space is left.
func (s *scanner) eof() bool {
	s.peek()
	return s.pos >= len(s.data)
}

// expect consumes byte c after white space.
func (s *scanner) expect(c byte, want string) error {
	if s.peek() != c || s.pos >= len(s.data) {
		return s.unexpected(want)
	}
	s.pos++
	return nil
}

// more is called after an object member or array element: it consumes a comma
// and reports true, or consumes the closing byte and reports false.
func (s *scanner) more(closing byte) (bool, error) {
	switch s.peek() {
	case ',':
		s.pos++
		return true, nil
	case closing:
		if s.pos < len(s.data) {
			s.pos++
			return false, nil
		}
	}
	return false, s.unexpected(fmt.Sprintf("',' or '%c'", closing))
}

// objectStart consumes '{' (already peeked) and reports whether the object
// has members; if it is empty, the closing '}' is consumed too.
func (s *scanner) objectStart() (bool, error) {
	if err := s.expect('{', "'{'"); err != nil {
		return false, err
	}
	if s.peek() == '}' {
		s.pos++
		return false, nil
	}
	return true, nil
}

// arrayStart is objectStart for arrays.
func (s *scanner) arrayStart() (bool, error) {
	if err := s.expect('[', "'['"); err != nil {
		return false, err
	}
	if s.peek() == ']' {
		s.pos++
		return false, nil
	}
	return true, nil
}

// key reads an object member's name and the colon after it. The result
// aliases the message or the scratch buffer and is valid until the next
// string is read.
func (s *scanner) key() ([]byte, error) {
	if s.peek() != '"' {
		return nil, s.unexpected("string for object key")
	}
	k, err := s.str()
	if err != nil {
		return nil, err
	}
	if err := s.expect(':', "':' after object key"); err != nil {
		return nil, err
	}
	return k, nil
}

// str reads a string at s.pos, which must hold '"', and returns its decoded
// bytes. They alias the message when the string has no escape and no byte
// outside ASCII, and the scratch buffer otherwise; either way they are valid
// until the next call.
func (s *scanner) str() ([]byte, error) {
	if s.pos >= len(s.data) || s.data[s.pos] != '"' {
		return nil, s.unexpected("string")
	}
	start := s.pos + 1
	for i := start; i < len(s.data); i++ {
		c := s.data[i]
		if c == '"' {
			s.pos = i + 1
			return s.data[start:i], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return s.strSlow(start, i)
		}
	}
	return nil, s.errAt(len(s.data), "unexpected end of input in string")
}

// strSlow decodes the rest of a string from i, as encoding/json does.
func (s *scanner) strSlow(start, i int) ([]byte, error) {
	buf := append(s.scratch[:0], s.data[start:i]...)
	d := s.data
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			s.scratch = buf
			return buf, nil
		case c < 0x20:
			return nil, s.errAt(i, fmt.Sprintf("invalid control character %s in string", quoteByte(c)))
		case c == '\\':
			if i+1 >= len(d) {
				return nil, s.errAt(len(d), "unexpected end of input in string escape")
			}
			switch e := d[i+1]; e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r := hex4(d[i+2:])
				if r < 0 {
					return nil, s.errAt(i, "invalid \\u escape in string")
				}
				i += 6
				if utf16.IsSurrogate(r) {
					if r2 := u4(d[i:]); r2 >= 0 {
						if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
							buf = utf8.AppendRune(buf, dec)
							i += 6
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				buf = utf8.AppendRune(buf, r)
				continue
			default:
				return nil, s.errAt(i, fmt.Sprintf("invalid escape %s in string", quoteByte(e)))
			}
			i += 2
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			i++
		default:
			r, size := utf8.DecodeRune(d[i:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, d[i:i+size]...)
			}
			i += size
		}
	}
	s.scratch = buf
	return nil, s.errAt(len(d), "unexpected end of input in string")
}

// hex4 parses four hex digits at the start of b, or returns -1.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// u4 parses a \uXXXX escape at the start of b, or returns -1.
func u4(b []byte) rune {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return -1
	}
	return hex4(b[2:])
}

// skipStr validates a string at s.pos without decoding it.
func (s *scanner) skipStr() error {
	d := s.data
	for i := s.pos + 1; i < len(d); i++ {
		switch c := d[i]; {
		case c == '"':
			s.pos = i + 1
			return nil
		case c < 0x20:
			return s.errAt(i, fmt.Sprintf("invalid control character %s in string", quoteByte(c)))
		case c == '\\':
			if i+1 >= len(d) {
				return s.errAt(len(d), "unexpected end of input in string escape")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if hex4(d[i+2:]) < 0 {
					return s.errAt(i, "invalid \\u escape in string")
				}
				i += 5
			default:
				return s.errAt(i, fmt.Sprintf("invalid escape %s in string", quoteByte(d[i+1])))
			}
		}
	}
	return s.errAt(len(d), "unexpected end of input in string")
}

// numberText reads a number at s.pos, validating the JSON grammar, and
// returns its text and whether it is an integer (no fraction, no exponent).
func (s *scanner) numberText() ([]byte, bool, error) {
	d := s.data
	start, i := s.pos, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		for i++; i < len(d) && isDigit(d[i]); i++ {
		}
	default:
		s.pos = i
		return nil, false, s.unexpected("digit in number")
	}
	integer := true
	if i < len(d) && d[i] == '.' {
		integer = false
		i++
		if i >= len(d) || !isDigit(d[i]) {
			s.pos = i
			return nil, false, s.unexpected("digit after decimal point")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		integer = false
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || !isDigit(d[i]) {
			s.pos = i
			return nil, false, s.unexpected("digit in exponent")
		}
		for ; i < len(d) && isDigit(d[i]); i++ {
		}
	}
	s.pos = i
	return d[start:i], integer, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// errRange reports a number that float64 cannot hold.
var errRange = errors.New("number out of the range of float64")

// float reads a number. A syntactically valid number too large for float64
// gives errRange.
func (s *scanner) float() (float64, error) {
	text, _, err := s.numberText()
	if err != nil {
		return 0, err
	}
	return parseFloat(text)
}

// parseFloat parses validated JSON number text without allocating.
func parseFloat(text []byte) (float64, error) {
	// The string aliases text only for the duration of the call: ParseFloat
	// keeps it only in its error, which is dropped here.
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(text), len(text)), 64)
	if err != nil {
		return 0, errRange
	}
	return f, nil
}

// literal consumes the literal lit (true, false or null) at s.pos.
func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		// Point at the first byte that differs.
		for i := 0; i < len(lit); i++ {
			if s.pos+i >= len(s.data) || s.data[s.pos+i] != lit[i] {
				s.pos += i
				return s.unexpected(fmt.Sprintf("%q", lit))
			}
		}
	}
	s.pos += len(lit)
	return nil
}

// skip validates and skips one value of any kind.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return s.errAt(s.pos, fmt.Sprintf("values nested more than %d deep", maxDepth))
	}
	switch c := s.peek(); c {
	case '{':
		more, err := s.objectStart()
		for more && err == nil {
			if s.peek() != '"' {
				return s.unexpected("string for object key")
			}
			if err = s.skipStr(); err != nil {
				return err
			}
			if err = s.expect(':', "':' after object key"); err != nil {
				return err
			}
			if err = s.skip(depth + 1); err != nil {
				return err
			}
			more, err = s.more('}')
		}
		return err
	case '[':
		more, err := s.arrayStart()
		for more && err == nil {
			if err = s.skip(depth + 1); err != nil {
				return err
			}
			more, err = s.more(']')
		}
		return err
	case '"':
		return s.skipStr()
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if c == '-' || isDigit(c) {
			_, _, err := s.numberText()
			return err
		}
		return s.unexpected("value")
	}
}

// kindAt names the kind of the value at s.pos, for error messages, or
// returns "" when no JSON value starts there.
func (s *scanner) kindAt() string {
	switch s.peek() {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	default:
		return "" // no valid value starts here
	}
}
