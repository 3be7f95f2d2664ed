package resolver

import (
	"encoding/binary"
	"errors"
)

var errShort = errors.New("response too short")

// skipName returns the offset just past a (possibly compressed) name.
func skipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, errShort
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			return off + 2, nil
		case l&0xC0 != 0:
			return 0, errors.New("bad label")
		default:
			off += 1 + l
		}
	}
}

// ttlOffsets returns the offset of every record's TTL field in a packed
// message (all sections; OPT records excluded), so that cached answers can
// count their TTLs down by patching bytes.
func ttlOffsets(msg []byte) ([]int, error) {
	if len(msg) < 12 {
		return nil, errShort
	}
	qd := int(binary.BigEndian.Uint16(msg[4:]))
	rrs := int(binary.BigEndian.Uint16(msg[6:])) + int(binary.BigEndian.Uint16(msg[8:])) + int(binary.BigEndian.Uint16(msg[10:]))
	off := 12
	var err error
	for range qd {
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		off += 4
	}
	out := make([]int, 0, rrs)
	for range rrs {
		if off, err = skipName(msg, off); err != nil {
			return nil, err
		}
		if off+10 > len(msg) {
			return nil, errShort
		}
		if binary.BigEndian.Uint16(msg[off:]) != 41 { // OPT's "TTL" is flags
			out = append(out, off+4)
		}
		off += 10 + int(binary.BigEndian.Uint16(msg[off+8:]))
	}
	if off > len(msg) {
		return nil, errShort
	}
	return out, nil
}
