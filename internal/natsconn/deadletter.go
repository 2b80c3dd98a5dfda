package natsconn

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// Headers of a dead letter (package serve documents them for users).
const (
	HeaderReason     = "Dagmm-Reason"
	HeaderReasonKind = "Dagmm-Reason-Kind"
	HeaderSubject    = "Dagmm-Subject"
	HeaderTruncated  = "Dagmm-Truncated"
)

// headerRoom is what a dead letter keeps free for its headers when its
// payload must be cut to fit the server's largest message.
const headerRoom = 8 << 10

// DeadLetter returns the dead letter of a message that arrived on from
// with payload data: the payload unchanged (cut to fit maxPayload, the
// server's largest message, with [HeaderTruncated] giving the original
// size), the cause in [HeaderReason], kind in [HeaderReasonKind] and from
// in [HeaderSubject]. The caller may add headers.
func DeadLetter(subject string, data []byte, maxPayload int64, from, kind string, cause error) *nats.Msg {
	h := nats.Header{}
	h.Set(HeaderReason, HeaderValue(cause.Error()))
	h.Set(HeaderReasonKind, kind)
	h.Set(HeaderSubject, from)
	if room := int(maxPayload) - headerRoom; len(data) > room && room > 0 {
		h.Set(HeaderTruncated, strconv.Itoa(len(data)))
		data = data[:room]
	}
	return &nats.Msg{Subject: subject, Data: data, Header: h}
}

// HeaderValue makes s safe for a NATS header value: one line, at most
// 1 KiB.
func HeaderValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1021] + "..."
	}
	return s
}
