// Package dnswire holds the few byte-level helpers that the server (answer
// ordering) and the resolver (cached TTLs) need to walk packed messages
// without unpacking them, and the ASCII case folding of DNS names that the
// server and the registry share.
package dnswire

import "errors"

// ErrName is returned for a name that runs past the message or uses a
// reserved label type.
var ErrName = errors.New("malformed name")

// SkipName returns the offset just past the (possibly compressed) name that
// starts at off. It does not follow pointers: a pointer ends the name.
func SkipName(msg []byte, off int) (int, error) {
	for {
		if off >= len(msg) {
			return 0, ErrName
		}
		l := int(msg[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0:
			if off+2 > len(msg) {
				return 0, ErrName
			}
			return off + 2, nil
		case l&0xC0 != 0:
			return 0, ErrName
		}
		off += 1 + l
	}
}
