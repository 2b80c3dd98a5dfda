package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/parquet-go/parquet-go/format"
)

// parquet-go allocates every length a file claims (a footer of up to 4 GB, a
// Thrift string or list of up to 2^31 elements in a footer or page header)
// before it finds that the file does not hold it, so a few corrupt bytes can
// cost gigabytes of memory. The checks below walk the footer and every page
// header first, with no allocation beyond the bytes read, and refuse lengths
// the file cannot hold. They refuse nothing that parquet-go would read.

// checkFrame checks the magic numbers, the footer length and the footer's
// Thrift structure.
func checkFrame(r io.ReaderAt, size int64) error {
	const magic = "PAR1"
	if size < 12 {
		return fmt.Errorf("not a parquet file: %d bytes", size)
	}
	var head, tail [8]byte
	if _, err := r.ReadAt(head[:4], 0); err != nil {
		return err
	}
	if _, err := r.ReadAt(tail[:], size-8); err != nil {
		return err
	}
	if string(head[:4]) != magic || string(tail[4:]) != magic {
		return errors.New("not a parquet file: no PAR1 magic number at its start and end (encrypted files are not supported)")
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > size-12 {
		return fmt.Errorf("malformed parquet file: footer of %d bytes in a file of %d", n, size)
	}
	footer := make([]byte, n)
	if _, err := r.ReadAt(footer, size-8-n); err != nil {
		return err
	}
	s := thriftScan{b: footer}
	if err := s.structure(false); err != nil {
		return fmt.Errorf("malformed parquet footer: %w", err)
	}
	return nil
}

// checkPages walks the page headers of one column chunk.
func checkPages(r io.ReaderAt, size int64, md *format.ColumnMetaData) error {
	start := md.DataPageOffset
	if md.DictionaryPageOffset > 0 {
		start = md.DictionaryPageOffset
	}
	end := start + md.TotalCompressedSize
	if start < 4 || md.TotalCompressedSize < 0 || end > size-8 || end < start {
		return fmt.Errorf("malformed parquet file: column chunk at [%d, %d) in a file of %d bytes", start, end, size)
	}
	var buf []byte
	pos := start
	for pos < end {
		// Read a window at the header; widen it while the header runs past.
		for window := min(int64(4096), end-pos); ; window = min(4*window, end-pos) {
			if int64(cap(buf)) < window {
				buf = make([]byte, window)
			}
			b := buf[:window]
			if _, err := r.ReadAt(b, pos); err != nil {
				return err
			}
			s := thriftScan{b: b}
			err := s.structure(true)
			if errors.Is(err, errShort) && window < end-pos {
				continue
			}
			if err != nil {
				return fmt.Errorf("malformed parquet page header at byte %d: %w", pos, err)
			}
			if s.pageSize < 0 {
				return fmt.Errorf("malformed parquet page header at byte %d: no page size", pos)
			}
			pos += int64(s.pos) + s.pageSize
			break
		}
	}
	if pos != end {
		return fmt.Errorf("malformed parquet file: last page ends at byte %d, past its column chunk's end at %d", pos, end)
	}
	return nil
}

var errShort = errors.New("data ends inside a value")

// thriftScan walks one Thrift compact-protocol struct in b without
// decoding it, checking that every length and count fits in what is left.
type thriftScan struct {
	b        []byte
	pos      int
	depth    int
	pageSize int64 // field 3 (compressed_page_size) of a page header; -1 when absent
}

func (s *thriftScan) need(n uint64) error {
	if n > uint64(len(s.b)-s.pos) {
		return errShort
	}
	return nil
}

func (s *thriftScan) uvarint() (uint64, error) {
	v, n := binary.Uvarint(s.b[s.pos:])
	if n == 0 {
		return 0, errShort
	}
	if n < 0 {
		return 0, errors.New("varint overflows 64 bits")
	}
	s.pos += n
	return v, nil
}

// structure walks a struct; header is true for a page header, whose field 3
// it records.
func (s *thriftScan) structure(header bool) error {
	if s.depth++; s.depth > 64 {
		return errors.New("structs nested too deep")
	}
	defer func() { s.depth-- }()
	if header {
		s.pageSize = -1
	}
	var id int64
	for {
		if err := s.need(1); err != nil {
			return err
		}
		b := s.b[s.pos]
		s.pos++
		if b == 0 {
			return nil
		}
		typ, delta := b&0x0f, int64(b>>4)
		if delta == 0 {
			v, err := s.uvarint()
			if err != nil {
				return err
			}
			id = int64(v>>1) ^ -int64(v&1)
		} else {
			id += delta
		}
		if header && id == 3 && typ == 5 {
			v, err := s.uvarint()
			if err != nil {
				return err
			}
			s.pageSize = int64(v>>1) ^ -int64(v&1)
			continue
		}
		if err := s.value(typ, false); err != nil {
			return err
		}
	}
}

func (s *thriftScan) value(typ byte, element bool) error {
	switch typ {
	case 1, 2: // bool: in the field header, or one byte in a container
		if element {
			if err := s.need(1); err != nil {
				return err
			}
			s.pos++
		}
	case 3: // byte
		if err := s.need(1); err != nil {
			return err
		}
		s.pos++
	case 4, 5, 6: // i16, i32, i64
		_, err := s.uvarint()
		return err
	case 7: // double
		if err := s.need(8); err != nil {
			return err
		}
		s.pos += 8
	case 8: // binary
		n, err := s.uvarint()
		if err != nil {
			return err
		}
		if err := s.need(n); err != nil {
			return err
		}
		s.pos += int(n)
	case 9, 10: // list, set
		if err := s.need(1); err != nil {
			return err
		}
		h := s.b[s.pos]
		s.pos++
		n := uint64(h >> 4)
		if n == 15 {
			var err error
			if n, err = s.uvarint(); err != nil {
				return err
			}
		}
		// Every element takes a byte at least.
		if err := s.need(n); err != nil {
			return err
		}
		for range n {
			if err := s.value(h&0x0f, true); err != nil {
				return err
			}
		}
	case 11: // map
		n, err := s.uvarint()
		if err != nil || n == 0 {
			return err
		}
		if err := s.need(1 + 2*min(n, 1<<40)); err != nil {
			return err
		}
		kv := s.b[s.pos]
		s.pos++
		for range n {
			if err := s.value(kv>>4, true); err != nil {
				return err
			}
			if err := s.value(kv&0x0f, true); err != nil {
				return err
			}
		}
	case 12: // struct
		return s.structure(false)
	default:
		return fmt.Errorf("unknown thrift type %d", typ)
	}
	return nil
}
