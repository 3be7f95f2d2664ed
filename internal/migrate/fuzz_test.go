package migrate

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzCorefile: any input either fails to parse with an error or converts
// and writes YAML; nothing panics. Inputs with `import` are skipped (they
// would read files of the machine).
func FuzzCorefile(f *testing.F) {
	files, _ := filepath.Glob("testdata/corefile/*.Corefile")
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
	f.Add("10.0.0.0/8:53 {\n hosts { fallthrough\n }\n}\n")
	f.Fuzz(func(t *testing.T, text string) {
		if strings.Contains(text, "import") {
			t.Skip()
		}
		blocks, err := ParseCorefile("Corefile", strings.NewReader(text))
		if err != nil {
			return
		}
		r := ConvertCorefile("Corefile", blocks)
		var b bytes.Buffer
		if err := r.WriteYAML(&b); err != nil {
			t.Fatalf("WriteYAML: %v", err)
		}
	})
}
