package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/viper"
)

// watchConfig reloads the configuration when the --config file changes
// (viper's watch, which follows ConfigMap symlink swaps) and on SIGHUP,
// until ctx ends. A configuration that does not parse or build is refused
// with a log line naming what is wrong; the running one stays.
func watchConfig(ctx context.Context, ans *answerer, log *slog.Logger) {
	reload := make(chan string, 1)
	trigger := func(why string) {
		select {
		case reload <- why:
		default:
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	if path := configPath(os.Args[1:]); path != "" {
		w := viper.New()
		w.SetConfigFile(path)
		if err := w.ReadInConfig(); err == nil {
			w.OnConfigChange(func(e fsnotify.Event) { trigger("file " + e.Name) })
			w.WatchConfig()
		}
	}
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				trigger("SIGHUP")
			case why := <-reload:
				next, err := loadConfig(os.Args[1:])
				if err != nil {
					log.Error("configuration refused, running one kept", "trigger", why, "err", err)
					continue
				}
				if err := ans.reload(next); err != nil {
					log.Error("configuration refused, running one kept", "trigger", why, "err", err)
					continue
				}
				log.Info("configuration reloaded", "trigger", why, "ttl", next.TTL, "upstreams", next.Upstreams)
			}
		}
	}()
}

// configPath returns the value of --config in args, "" without one.
func configPath(args []string) string {
	for i, a := range args {
		switch {
		case a == "--config" && i+1 < len(args):
			return args[i+1]
		case len(a) > len("--config=") && a[:len("--config=")] == "--config=":
			return a[len("--config="):]
		}
	}
	return ""
}
