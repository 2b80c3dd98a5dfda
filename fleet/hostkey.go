package fleet

import (
	"fmt"
	"strings"

	"github.com/dagmm/dagmm/serve/ingest"
)

// hostKey encodes a host name as one token of a KV key or object name.
// Host names may hold any printing character but '*' and '>' (see
// [ingest.CheckHost]), while a KV key allows only letters, digits and
// "-/_=."; and a '.' would split the host into several subject tokens,
// breaking the "cur.*" filters. So letters, digits, '-' and '_' stay as
// they are, which keeps the usual names readable in "nats kv ls", and
// every other byte becomes "=XX" (upper-case hex): "db.eu" is "db=2Eeu".
// The encoding is reversible ([parseHostKey]) and injective, '=' itself
// being escaped. A 255-byte host gives at most 765 bytes.
func hostKey(host string) string {
	var b strings.Builder
	b.Grow(len(host))
	for i := 0; i < len(host); i++ {
		c := host[i]
		if keepByte(c) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "=%02X", c)
	}
	return b.String()
}

// keepByte reports whether c stands for itself in a host key.
func keepByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// parseHostKey decodes a [hostKey]. It refuses anything hostKey cannot
// have written: a byte outside the kept set, a bad escape, or an escape of
// a kept byte.
func parseHostKey(key string) (string, error) {
	var b strings.Builder
	b.Grow(len(key))
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case keepByte(c):
			b.WriteByte(c)
		case c == '=' && i+2 < len(key) && isUpperHex(key[i+1]) && isUpperHex(key[i+2]):
			v := unhex(key[i+1])<<4 | unhex(key[i+2])
			if keepByte(v) {
				return "", fmt.Errorf("fleet: host key %q: byte %d escapes %q, which is never escaped", key, i, v)
			}
			b.WriteByte(v)
			i += 2
		default:
			return "", fmt.Errorf("fleet: host key %q: byte %d (%q) is not a letter, digit, '-', '_' or an =XX escape", key, i, c)
		}
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("fleet: empty host key")
	}
	return b.String(), nil
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}

// checkHostName refuses a host that cannot name a host (see
// [ingest.CheckHost]), saying what is wrong with it.
func checkHostName(host string) error {
	if err := ingest.CheckHost(host); err != nil {
		return fmt.Errorf("host %q: %w", host, err)
	}
	return nil
}
