// Package dirwatch calls back when anything in a folder changes. The file
// sources (registry's cluster files, the server's zone files) use it to pick
// up edits, atomic replaces (rename over) and ConfigMap-style symlink swaps.
package dirwatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls fn once after each burst of changes in dir (events closer than
// debounce are merged), and also every poll interval when poll > 0, as a
// safety net for filesystems that send no events. It blocks until ctx ends;
// fn runs on Watch's goroutine, never concurrently with itself. A nil log
// means slog.Default().
func Watch(ctx context.Context, log *slog.Logger, dir string, debounce, poll time.Duration, fn func()) error {
	if log == nil {
		log = slog.Default()
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	// The folder itself may be deleted or renamed away and come back (a new
	// inode the watch does not follow): the poll notices and watches the
	// new one, so events, not only the poll, keep working.
	watched, _ := os.Stat(dir)
	rewatch := func() {
		st, err := os.Stat(dir)
		if err != nil || (watched != nil && os.SameFile(st, watched)) {
			return
		}
		_ = w.Remove(dir) // the old inode's watch, if inotify has not dropped it
		if err := w.Add(dir); err != nil {
			log.Warn("file watch", "dir", dir, "err", err)
			return
		}
		watched = st
		log.Info("folder replaced, watching the new one", "dir", dir)
	}
	var timer <-chan time.Time
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			log.Debug("file event", "dir", dir, "event", ev.String())
			timer = time.After(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("file watch error", "dir", dir, "err", err)
		case <-timer:
			timer = nil
			fn()
		case <-tick:
			rewatch()
			fn()
		}
	}
}
