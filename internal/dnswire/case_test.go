package dnswire

import "testing"

func TestAppendLower(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{"\x03WwW\x07Example\x03ORG\x00", "\x03www\x07example\x03org\x00"},
		{"@[AZ`{az", "@[az`{az"},                   // the bytes around both ranges stay
		{"K\u212aÄ", "k\u212aÄ"},                   // only ASCII folds: not the Kelvin sign, not Ä
		{"\x3f\x40\x41\x5a\x5b", "\x3f\x40az\x5b"}, // length bytes up to 63 are not letters
	} {
		if got := string(AppendLower([]byte("pre:"), c.in)); got != "pre:"+c.want {
			t.Errorf("AppendLower(%q) = %q, want %q", c.in, got, "pre:"+c.want)
		}
		if got := string(AppendLower(nil, []byte(c.in))); got != c.want {
			t.Errorf("AppendLower([]byte %q) = %q, want %q", c.in, got, c.want)
		}
		if got := LowerString(c.in); got != c.want {
			t.Errorf("LowerString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { AppendLower(buf, "Api.Default.SVC") }); n != 0 {
		t.Errorf("AppendLower into room: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { LowerString("api.default.svc") }); n != 0 {
		t.Errorf("LowerString of a lower-case name: %v allocations, want 0", n)
	}
}

func TestEqualFold(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"WWW.example", "www.EXAMPLE", true},
		{"www", "wwx", false},
		{"www", "www.", false},
		{"@", "`", false},               // 0x40 and 0x60 differ by the case bit but are not letters
		{"[", "{", false},               // nor are 0x5B and 0x7B
		{"\u212a", "k", false},          // no Unicode folding
		{"\xc3\x84", "\xc3\xa4", false}, // Ä and ä are different bytes in DNS
	} {
		if got := EqualFold([]byte(c.a), []byte(c.b)); got != c.want {
			t.Errorf("EqualFold(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}
