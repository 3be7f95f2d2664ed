package deploy

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	binLog  string
)

// binaries runs deploy/build-binaries.sh once per test binary and returns
// its output folder.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "clusterdns-deploy-bin-")
		if binErr != nil {
			return
		}
		cmd := exec.Command("bash", filepath.Join(repoRoot(t), "deploy", "build-binaries.sh"), binDir)
		out, err := cmd.CombinedOutput()
		binLog = string(out)
		if err != nil {
			binErr = errors.New("deploy/build-binaries.sh: " + err.Error() + "\n" + binLog)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// TestBuildScript: deploy/build-binaries.sh holds the release build
// commands and they give static, stripped binaries.
func TestBuildScript(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "deploy", "build-binaries.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"./cmd/clusterdns", "./cmd/nodeproxy"} {
		name := filepath.Base(cmd)
		want := `CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/` + name + `" ` + cmd
		if !bytes.Contains(script, []byte(want)) {
			t.Errorf("deploy/build-binaries.sh: no line %s", want)
		}
	}

	dir := binaries(t)
	checkStatic(t, filepath.Join(dir, "clusterdns"))
	out, err := exec.Command(filepath.Join(dir, "clusterdns"), "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Usage: clusterdns") || !strings.Contains(string(out), "--config") {
		t.Errorf("clusterdns --help: %v\n%s", err, out)
	}

	t.Run("nodeproxy", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(root, "cmd", "nodeproxy")); err != nil {
			t.Skip("cmd/nodeproxy does not exist yet")
		}
		bin := filepath.Join(dir, "nodeproxy")
		if _, err := os.Stat(bin); err != nil {
			// cmd/nodeproxy appeared after the build ran.
			t.Skipf("nodeproxy not built: %v\n%s", err, binLog)
		}
		checkStatic(t, bin)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
		if err != nil {
			t.Errorf("nodeproxy --help: %v\n%s", err, out)
		}
		// The DaemonSet's flags are nodeproxy's: with --help after them it
		// exits 0, an unknown one would be an error.
		var ds appsv1.DaemonSet
		index(build(t, filepath.Join(root, "deploy"))).get(t, "DaemonSet", "nodeproxy", &ds)
		var args []string
		for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
			args = append(args, strings.ReplaceAll(a, "$(NODE_NAME)", "node-1"))
		}
		out, err = exec.CommandContext(ctx, bin, append(args, "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("nodeproxy %s --help: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
}

// checkStatic: no program interpreter, no dynamic section, no symbol table.
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s: has a %v program header: not static", filepath.Base(path), p.Type)
		}
	}
	if f.Section(".dynamic") != nil || f.Section(".interp") != nil {
		t.Errorf("%s: has a .dynamic or .interp section: not static", filepath.Base(path))
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s: needs %v", filepath.Base(path), libs)
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: not stripped (-s)", filepath.Base(path))
	}
}

// stage is one FROM ... of a Dockerfile with its instructions, continuation
// lines joined.
type stage struct {
	from, name string
	instrs     []string
}

func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			s := stage{}
			var args []string
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					args = append(args, f)
				}
			}
			if len(args) > 0 {
				s.from = args[0]
			}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				s.name = args[2]
			}
			stages = append(stages, s)
			return
		}
		if len(stages) == 0 {
			t.Fatalf("%s: %q before the first FROM", path, line)
		}
		stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, line)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if trimmed := strings.TrimSpace(line); strings.HasPrefix(trimmed, "#") || trimmed == "" && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return stages
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	stages := parseDockerfile(t, filepath.Join(root, "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages, want a build stage and a final stage", len(stages))
	}
	var build *stage
	for i := range stages {
		if stages[i].name == "build" {
			build = &stages[i]
		}
	}
	if build == nil || !strings.HasPrefix(build.from, "golang:1.26") {
		t.Fatalf("Dockerfile: no stage `FROM golang:1.26 AS build` (stages %+v)", stages)
	}
	runsScript := false
	for _, in := range build.instrs {
		runsScript = runsScript || strings.HasPrefix(in, "RUN ") && regexp.MustCompile(`\bdeploy/build-binaries\.sh /out\b`).MatchString(in)
		if strings.HasPrefix(in, "RUN ") && strings.Contains(in, "go build") {
			t.Errorf("Dockerfile: the build stage runs `go build` itself (%q); it must only call deploy/build-binaries.sh", in)
		}
	}
	if !runsScript {
		t.Errorf("Dockerfile: the build stage does not RUN deploy/build-binaries.sh /out: %q", build.instrs)
	}

	final := stages[len(stages)-1]
	if final.from != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("Dockerfile: final stage FROM %s, want gcr.io/distroless/static-debian12:nonroot", final.from)
	}
	has := func(prefix string) string {
		for _, in := range final.instrs {
			if strings.HasPrefix(in, prefix) {
				return in
			}
		}
		return ""
	}
	if in := has("COPY --from=build /out"); in == "" {
		t.Errorf("Dockerfile: final stage does not copy the binaries from /out: %q", final.instrs)
	}
	if in := has("COPY zones/"); !strings.HasSuffix(in, " /zones/") {
		t.Errorf("Dockerfile: final stage does not copy zones/ to /zones: %q", in)
	}
	if in := has("USER "); in != "" && in != "USER 65532:65532" && in != "USER nonroot:nonroot" {
		t.Errorf("Dockerfile: %s: want the non-root 65532", in)
	}
	var entry []string
	if in := has("ENTRYPOINT "); in == "" || json.Unmarshal([]byte(strings.TrimPrefix(in, "ENTRYPOINT ")), &entry) != nil ||
		len(entry) != 1 || entry[0] != "/clusterdns" {
		t.Errorf("Dockerfile: %q, want ENTRYPOINT [\"/clusterdns\"]", in)
	}
	expose := strings.Fields(strings.TrimPrefix(has("EXPOSE "), "EXPOSE "))
	for _, p := range []string{"53/udp", "53/tcp", "8080", "9153"} {
		if !strings.Contains(" "+strings.Join(expose, " ")+" ", " "+p+" ") {
			t.Errorf("Dockerfile: EXPOSE %v lacks %s", expose, p)
		}
	}

	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"deploy", "zones", "cmd", "go.mod", "go.sum", "deploy/build-binaries.sh"} {
			if line == needed || line == needed+"/" {
				t.Errorf(".dockerignore: %s excludes %s, which the build needs", line, needed)
			}
		}
	}
}
