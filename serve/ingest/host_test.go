package ingest

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheckHost(t *testing.T) {
	for _, tc := range []struct {
		name, host, problem string // problem "" for a valid host
	}{
		{"short", "web-1", ""},
		{"fqdn", "db-2.eu-west.example.com", ""},
		{"underscore and digits", "node_07", ""},
		{"unicode letters", "hôte-été", ""},
		{"255 bytes", strings.Repeat("a", 255), ""},
		{"256 bytes", strings.Repeat("a", 256), "256 bytes long, longer than 255 bytes"},
		{"5000 bytes", strings.Repeat("h", 5000), "5000 bytes long"},
		{"empty", "", "empty"},
		{"space", "web 1", "white space or a control character (byte 0x20) at byte 3"},
		{"tab", "web\t1", "byte 0x09"},
		{"CR LF", "web\r\n", "byte 0x0d"},
		{"NUL", "web\x00", "byte 0x00"},
		{"DEL", "web\x7f", "byte 0x7f"},
		{"C1 control", "web\u0085", "U+0085"},
		{"no-break space", "web\u00a0x", "U+00A0"},
		{"line separator", "a\u2028b", "U+2028"},
		{"star", "web*", "'*' or '>'"},
		{"greater", "web>", "'*' or '>'"},
		{"invalid UTF-8", "web\xff", "not valid UTF-8 at byte 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHost(tc.host)
			switch {
			case tc.problem == "" && err != nil:
				t.Errorf("CheckHost(%.40q) = %v, want nil", tc.host, err)
			case tc.problem != "" && (err == nil || !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), tc.problem)):
				t.Errorf("CheckHost(%.40q) = %v, want ErrInvalidHost saying %q", tc.host, err, tc.problem)
			}
		})
	}
}

func TestSampleDecoderHost(t *testing.T) {
	d, err := NewSampleDecoder([]string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name, msg string
		offset    int // of the bad host; -1 when valid
		index     int
	}{
		{"valid", `{"host":"web-1.example.com","values":{"a":1}}`, -1, -1},
		{"empty is no host", `{"host":"","values":{"a":1}}`, -1, -1},
		{"long", `{"host":"` + long + `","values":{"a":1}}`, 8, -1},
		{"escaped CR LF", `{"values":{"a":1},"host":"web\r\nPUB x 1"}`, 25, -1},
		{"escaped NUL", `{"host":"w\u0000","values":{"a":1}}`, 8, -1},
		{"wildcard in a batch", `[{"host":"ok","values":{"a":1}},{"host":"a.>","values":{"a":1}}]`, 40, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			samples, err := d.Decode([]byte(tc.msg), time.Unix(0, 0))
			if tc.offset < 0 {
				if err != nil || len(samples) != 1 {
					t.Fatalf("Decode: %v, %d samples", err, len(samples))
				}
				return
			}
			var se *SampleError
			if !errors.As(err, &se) || !errors.Is(err, ErrInvalidHost) || se.Offset != tc.offset || se.Index != tc.index {
				t.Fatalf("Decode: %v (%+v), want ErrInvalidHost at offset %d, index %d", err, se, tc.offset, tc.index)
			}
			if !strings.Contains(err.Error(), "invalid host") {
				t.Errorf("error %q does not say the host is invalid", err)
			}
		})
	}
}

func TestAssemblerBadHost(t *testing.T) {
	// A measurement whose host cannot be a subject token is refused with a
	// reason; the other measurements of the message are still used.
	a, _ := newTestAssembler(t, 10*time.Second, nil)
	ts := time.Unix(1_800_000_000, 0)
	msg := []byte("mem,host=" + strings.Repeat("h", 300) + " used_percent=1 " + "1800000000000000000\n" +
		"mem,host=good used_percent=2 1800000000000000000\n")
	_, err := a.AddMessage(msg, FormatInflux, ts)
	if !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), `measurement "mem", tag "host": invalid host: 300 bytes long`) {
		t.Fatalf("AddMessage: %v, want an invalid host naming the measurement and tag", err)
	}
	st := a.Stats()
	if st.DecodeErrors != 1 || st.Hosts != 1 {
		t.Errorf("decode errors %d, hosts %d; want 1 and 1 (the good host)", st.DecodeErrors, st.Hosts)
	}
	jsonMsg := []byte(`{"fields":{"used_percent":3},"name":"mem","tags":{"host":"bad host"},"timestamp":1800000000}`)
	if _, err := a.AddMessage(jsonMsg, FormatJSON, ts); !errors.Is(err, ErrInvalidHost) || !strings.Contains(err.Error(), "byte 0x20") {
		t.Errorf("JSON AddMessage: %v", err)
	}
}

// FuzzCheckHost: a host CheckHost accepts can be put in a NATS subject
// token (after '.' becomes '_'), and one it refuses says why.
func FuzzCheckHost(f *testing.F) {
	for _, s := range []string{"web-1", "db.example.com", "", "a b", "x\r\ny", "*", ">", "\xff", "é", strings.Repeat("a", 256)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		err := CheckHost(h)
		if err != nil {
			if !errors.Is(err, ErrInvalidHost) || !strings.HasPrefix(err.Error(), "ingest: invalid host: ") {
				t.Fatalf("CheckHost(%q) = %v", h, err)
			}
			return
		}
		if h == "" || len(h) > MaxHostLen || !utf8.ValidString(h) || strings.ContainsAny(h, " \t\r\n\x00*>\x7f") {
			t.Fatalf("CheckHost(%q) accepted a host a subject token cannot hold", h)
		}
	})
}

func TestHostToken(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"web-1", "web-1"},
		{"", "unknown"},
		{"db1.example.com", "db1_example_com"},
		{"a b*c>d\te", "a_b_c_d_e"},
		{"tab\there", "tab_here"},
		{"del\x7f", "del_"},
		{"hôte", "hôte"},
	} {
		if got := HostToken(tc.host); got != tc.want {
			t.Errorf("HostToken(%q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}
