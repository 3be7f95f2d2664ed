package migrate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, dir, text string) ([]ServerBlock, error) {
	t.Helper()
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ParseCorefile(path, f)
}

func TestParseLinesBlocksAndKeys(t *testing.T) {
	blocks, err := parse(t, t.TempDir(), `# comment
dns://.:1053 cluster.local {
    forward . 1.1.1.1 "8.8.8.8" { # trailing comment
        max_concurrent 10
        policy sequential
    }
    kubernetes cluster.local { pods insecure }
    errors
}
10.96.0.0/16 {
    whoami
}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 {
		t.Fatalf("%d blocks", len(blocks))
	}
	k := blocks[0].Keys
	if len(k) != 2 || k[0].Scheme != "dns" || k[0].Zone != "." || k[0].Port != "1053" || k[1].Zone != "cluster.local." || k[1].Port != "53" {
		t.Fatalf("keys %+v", k)
	}
	if z := blocks[1].Keys[0].Zone; z != "96.10.in-addr.arpa." {
		t.Fatalf("CIDR key: zone %s", z)
	}
	ds := blocks[0].Directives
	if len(ds) != 3 || ds[0].Name != "forward" || ds[1].Name != "kubernetes" || ds[2].Name != "errors" {
		t.Fatalf("directives (in the order written): %+v", ds)
	}
	fw := ds[0]
	if strings.Join(fw.Args, " ") != ". 1.1.1.1 8.8.8.8" || fw.Line != 3 || len(fw.Block) != 2 || fw.Block[1].Name != "policy" || fw.Block[1].Args[0] != "sequential" || fw.Block[1].Line != 5 {
		t.Fatalf("forward: %+v", fw)
	}
	// A one-line block.
	if kb := ds[1].Block; len(kb) != 1 || kb[0].Name != "pods" || len(kb[0].Args) != 1 || kb[0].Args[0] != "insecure" {
		t.Fatalf("one-line block: %+v", ds[1])
	}
}

// TestParseEnvironment: {$VAR} and {%VAR%} are replaced (CoreDNS's two
// spellings), in arguments and in server block keys.
func TestParseEnvironment(t *testing.T) {
	t.Setenv("CF_ZONE", "corp.example")
	t.Setenv("CF_UP", "10.0.0.53")
	blocks, err := parse(t, t.TempDir(), "{$CF_ZONE}:53 {\n    forward . {$CF_UP} {%CF_UP%}\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	if blocks[0].Keys[0].Zone != "corp.example." {
		t.Fatalf("key %+v", blocks[0].Keys)
	}
	if got := strings.Join(blocks[0].Directives[0].Args, " "); got != ". 10.0.0.53 10.0.0.53" {
		t.Fatalf("args %q", got)
	}
}

// TestParseImportAndSnippets: `import` of a file (relative to the
// Corefile) and of a snippet splice their lines in; the imported lines
// keep their own file and line.
func TestParseImportAndSnippets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "extra.conf"), []byte("\n\nprometheus :9153\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks, err := parse(t, dir, "(base) {\n    errors\n    cache 30\n}\n.:53 {\n    import base\n    import extra.conf\n    forward . 1.1.1.1\n}\n")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range blocks[0].Directives {
		names = append(names, d.Name)
		if d.Name == "prometheus" && (filepath.Base(d.File) != "extra.conf" || d.Line != 3) {
			t.Errorf("imported line at %s:%d, want extra.conf:3", d.File, d.Line)
		}
	}
	if len(blocks) != 1 || strings.Join(names, " ") != "errors cache forward prometheus" {
		t.Fatalf("blocks %d, directives %v", len(blocks), names)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{".:53 {\n    forward . 1.1.1.1 {\n", "Unexpected EOF"},
		{".:53 {\n  import missing.conf\n}\n", "missing.conf"},
		{".:99999 {\n  errors\n}\n", "port"},
		{"bad..zone {\n  errors\n}\n", "not a domain name"},
		{"10.96.0.0/12 {\n  errors\n}\n", "octet boundary"},
		{"(snip) {\n  errors\n}\n(snip) {\n  loop\n}\n", "redeclaration"},
	} {
		_, err := parse(t, t.TempDir(), c.text)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want one mentioning %q", c.text, err, c.want)
		}
	}
}
