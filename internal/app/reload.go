package app

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

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
	args := ans.cfg.args // the same on every reload
	path := configPath(args)
	// A file written in place sends several events (truncate, write): wait
	// for them to settle before reading, so a half-written file is never
	// taken for the new configuration.
	var mu sync.Mutex
	var settle *time.Timer
	if path != "" {
		w := viper.New()
		w.SetConfigFile(path)
		if err := w.ReadInConfig(); err == nil {
			w.OnConfigChange(func(e fsnotify.Event) {
				mu.Lock()
				defer mu.Unlock()
				if settle != nil {
					settle.Stop()
				}
				settle = time.AfterFunc(200*time.Millisecond, func() { trigger("file " + e.Name) })
			})
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
				if st, err := os.Stat(path); path != "" && err == nil && st.Size() == 0 {
					log.Error("configuration refused, running one kept", "trigger", why, "err", "config file "+path+" is empty")
					continue
				}
				next, err := LoadConfig(args)
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
