package resolver

import (
	"encoding/binary"
	"errors"

	"github.com/clusterdns/clusterdns/internal/dnswire"
)

var errShort = errors.New("response too short")

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
		if off, err = dnswire.SkipName(msg, off); err != nil {
			return nil, err
		}
		off += 4
	}
	out := make([]int, 0, rrs)
	for range rrs {
		if off, err = dnswire.SkipName(msg, off); err != nil {
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
