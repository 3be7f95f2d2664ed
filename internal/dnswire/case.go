package dnswire

// DNS names compare without regard to ASCII case, and only ASCII case
// (RFC 4343): other bytes, UTF-8 included, are compared as they are. These
// helpers are the one place that folds case; unicode-aware functions such
// as strings.ToLower or bytes.EqualFold would fold more than DNS does.

// AppendLower appends s to dst with ASCII capitals lower-cased. It
// allocates only when dst has no room for s. Applied to a whole wire-format
// name it keeps the label lengths (below 64, never a capital).
func AppendLower[T ~string | ~[]byte](dst []byte, s T) []byte {
	n := len(dst)
	dst = append(dst, s...)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}

// LowerString returns s with ASCII capitals lower-cased; s itself, without
// allocating, when it has none.
func LowerString(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return string(AppendLower(make([]byte, 0, len(s)), s))
		}
	}
	return s
}

// EqualFold reports whether a and b are equal when ASCII capitals are
// lower-cased.
func EqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
