package ingest

import (
	"errors"
	"fmt"
	"unicode"
	"unicode/utf8"
)

// MaxHostLen is the longest host name accepted, in bytes. A DNS name is at
// most 253 characters in text (255 octets on the wire, RFC 1035), so every
// real host name fits; and since the host goes into NATS subjects
// ("anomalies.<host>"), the bound keeps a subject far below the 4,096-byte
// protocol line a NATS server accepts by default, which a longer host once
// exceeded (the server refused the publish and the client closed its
// connection).
const MaxHostLen = 255

// ErrInvalidHost is wrapped by the errors of [CheckHost], and so by those
// of the decoders for a host it refuses.
var ErrInvalidHost = errors.New("ingest: invalid host")

// CheckHost reports whether h can name a host: the service puts it in the
// subjects of its events, as one subject token. It refuses an empty name,
// one longer than [MaxHostLen] bytes, invalid UTF-8, white space and other
// characters that do not print (control bytes among them: CR and LF would
// break the NATS protocol line), and the NATS wildcards '*' and '>'. A '.'
// is accepted, since fully qualified names hold them: the service writes
// it as '_' in a subject token.
func CheckHost(h string) error {
	if p := hostProblem(h); p != "" {
		return &hostError{problem: p}
	}
	return nil
}

// hostError is a host [CheckHost] refuses; where, when set, says where the
// host came from.
type hostError struct{ where, problem string }

func (e *hostError) Error() string {
	if e.where == "" {
		return "ingest: invalid host: " + e.problem
	}
	return "ingest: " + e.where + ": invalid host: " + e.problem
}

// Is makes errors.Is(err, ErrInvalidHost) true.
func (e *hostError) Is(target error) bool { return target == ErrInvalidHost }

// hostProblem says what is wrong with h as a host name, or "" when
// nothing is.
func hostProblem(h string) string {
	switch {
	case h == "":
		return "it is empty"
	case len(h) > MaxHostLen:
		return fmt.Sprintf("%d bytes long, longer than %d bytes", len(h), MaxHostLen)
	}
	for i := 0; i < len(h); {
		c := h[i]
		if c < utf8.RuneSelf {
			switch {
			case c <= ' ' || c == 0x7f:
				return fmt.Sprintf("white space or a control character (byte 0x%02x) at byte %d", c, i)
			case c == '*' || c == '>':
				return fmt.Sprintf("'*' or '>' (a NATS wildcard) at byte %d", i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(h[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return fmt.Sprintf("not valid UTF-8 at byte %d", i)
		case !unicode.IsPrint(r):
			return fmt.Sprintf("white space or a control character (%U) at byte %d", r, i)
		}
		i += size
	}
	return ""
}

// HostToken turns a host name into one NATS subject token, as the service
// writes it in subjects (and as publishers must, to reach a host's
// subject): characters a token cannot hold ('.', '*', '>', white space, control characters) become '_',
// and an empty host becomes "unknown".
func HostToken(h string) string {
	if h == "" {
		return "unknown"
	}
	ok := true
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f {
			ok = false
			break
		}
	}
	if ok {
		return h
	}
	b := []byte(h)
	for i, c := range b {
		if c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f {
			b[i] = '_'
		}
	}
	return string(b)
}
