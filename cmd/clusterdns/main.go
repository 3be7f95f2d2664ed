// Command clusterdns is an authoritative DNS server for cluster.local: it
// answers Services, headless endpoints and pods by the Kubernetes DNS
// specification, from the Kubernetes API (with a kubeconfig, or in a pod)
// or from cluster manifests in files (the embedded example by default).
// Run `clusterdns --help` for the configuration. The server itself is
// internal/app; this command reads the configuration and runs it.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/clusterdns/clusterdns/internal/app"
)

func main() {
	if len(os.Args) > 1 && importCommands[os.Args[1]] != nil {
		os.Exit(runImport(os.Args[1], os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	cfg, err := app.LoadConfig(os.Args[1:])
	if errors.Is(err, pflag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "clusterdns:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := app.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "clusterdns:", err)
		os.Exit(1)
	}
}
