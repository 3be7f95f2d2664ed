package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/clusterdns/clusterdns/internal/migrate"
)

// importCommands are the subcommands that convert another server's
// configuration (main dispatches them before the server's flags).
var importCommands = map[string]func(name string, r io.Reader) (*migrate.Result, error){
	"import-corefile": migrate.ReadCorefile,
	"import-kube-dns": migrate.ReadKubeDNS,
}

// runImport runs `clusterdns import-corefile|import-kube-dns [--allow-partial] FILE`
// (FILE "-" reads stdin):
// the clusterdns YAML configuration on stdout, each directive that could
// not be carried over (and each note) on stderr. It returns the exit code:
// 0, 1 when something was not converted (unless --allow-partial), 2 for a
// usage error or a file that does not parse (nothing on stdout then).
func runImport(cmd string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	allowPartial := fs.Bool("allow-partial", false, "exit 0 even when some directives could not be converted")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: clusterdns %s [--allow-partial] FILE|-\n\nPrints the equivalent clusterdns configuration (YAML, for --config) on stdout;\nwhat cannot be converted is listed on stderr and makes the exit code 1.\n\n%s", cmd, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	name, in := fs.Arg(0), stdin
	if name == "-" {
		name = "<stdin>" // relative imports: from the working directory
	} else {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintln(stderr, "clusterdns:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	res, err := importCommands[cmd](name, in)
	if err != nil {
		fmt.Fprintln(stderr, "clusterdns:", err)
		return 2
	}
	var out bytes.Buffer
	if err := res.WriteYAML(&out); err != nil {
		fmt.Fprintln(stderr, "clusterdns:", err)
		return 2
	}
	for _, f := range res.Findings {
		fmt.Fprintln(stderr, f)
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		fmt.Fprintln(stderr, "clusterdns:", err)
		return 2
	}
	if res.Partial() {
		if *allowPartial {
			fmt.Fprintln(stderr, "clusterdns: some directives were not converted (see above); --allow-partial: exit 0")
			return 0
		}
		fmt.Fprintln(stderr, "clusterdns: some directives were not converted (see above); the configuration is printed, pass --allow-partial to accept it")
		return 1
	}
	return 0
}
