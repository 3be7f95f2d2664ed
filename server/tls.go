package server

// DNS over TLS (RFC 7858) on its own address: the TLS listener shares the
// TCP path (serveConn: framing, the idle timeout, a connection limit of
// max_tcp_conns of its own, taken before the handshake so that a
// handshake flood holds at most that many slots and never touches UDP),
// with a bound on the handshake. The certificate comes from a
// CertReloader, which re-reads its files when they change.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TLSOptions configure the DNS over TLS listener; a zero value (no Addr)
// turns it off.
type TLSOptions struct {
	// Addr is host:port to listen on for DNS over TLS.
	Addr string
	// Certs supplies the certificate for each handshake.
	Certs *CertReloader
	// HandshakeTimeout bounds the TLS handshake of a new connection (0:
	// 3 s); the connection's slot is taken before it.
	HandshakeTimeout time.Duration
}

// listenTLS binds the TLS address when one is configured; listen calls it.
func (l *Listener) listenTLS() error {
	o := l.opt.TLS
	if o.Addr == "" {
		return nil
	}
	if o.Certs == nil {
		return errors.New("listen tls: no certificate")
	}
	if o.HandshakeTimeout <= 0 {
		l.opt.TLS.HandshakeTimeout = 3 * time.Second
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen tls %s: %w", o.Addr, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: o.Certs.GetCertificate}
	l.tlsLn = tls.NewListener(ln, cfg)
	l.tlsSem = make(chan struct{}, l.opt.MaxTCPConns)
	return nil
}

// TLSAddr returns the bound DNS over TLS address, or nil when off.
func (l *Listener) TLSAddr() net.Addr {
	if l.tlsLn == nil {
		return nil
	}
	return l.tlsLn.Addr()
}

// handshake completes a TLS connection's handshake within the handshake
// timeout; serveConn calls it before reading queries. Plain TCP passes.
func (l *Listener) handshake(c net.Conn) error {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.opt.TLS.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		l.log.Debug("tls handshake", "client", c.RemoteAddr(), "err", err)
		return err
	}
	return nil
}

// CertReloader holds a certificate and key pair read from files and reads
// them again when they change (their size, modification time or inode, as
// a symlink swap by cert-manager or a kubelet secret volume changes them),
// checked at most every CheckEvery on a handshake. A pair that fails to
// load on a change is logged and the previous one kept.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	// CheckEvery is the least time between two looks at the files (set
	// before the first handshake; NewCertReloader makes it 1 s).
	CheckEvery time.Duration
	mu         sync.Mutex // one reload at a time
	cur        atomic.Pointer[tls.Certificate]
	stamp      atomic.Pointer[string]
	lastCheck  atomic.Int64
}

// NewCertReloader reads the pair; a missing, unreadable or invalid file is
// an error naming it. An expired (or not yet valid) certificate is logged
// as a warning and served anyway. Run reads the configuration and calls it
// once; it does not block.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log, CheckEvery: time.Second}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func certStamp(path string) string {
	st, err := os.Stat(path) // follows symlinks: a swapped link changes the stamp
	if err != nil {
		return "missing"
	}
	var ino uint64
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		ino = s.Ino
	}
	return fmt.Sprintf("%d/%d/%d", st.Size(), st.ModTime().UnixNano(), ino)
}

func (r *CertReloader) stamps() string {
	return certStamp(r.certFile) + "|" + certStamp(r.keyFile)
}

func (r *CertReloader) load() error {
	stamp := r.stamps()
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return fmt.Errorf("tls_cert_file %s: %w", r.certFile, err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return fmt.Errorf("tls_key_file %s: %w", r.keyFile, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("tls_cert_file %s with tls_key_file %s: %w", r.certFile, r.keyFile, err)
	}
	if leaf := cert.Leaf; leaf != nil {
		now := time.Now()
		if now.After(leaf.NotAfter) {
			r.log.Warn("TLS certificate expired", "file", r.certFile, "not_after", leaf.NotAfter)
		} else if now.Before(leaf.NotBefore) {
			r.log.Warn("TLS certificate not yet valid", "file", r.certFile, "not_before", leaf.NotBefore)
		}
		r.log.Info("TLS certificate loaded", "file", r.certFile, "subject", leaf.Subject.String(), "not_after", leaf.NotAfter)
	}
	r.cur.Store(&cert)
	r.stamp.Store(&stamp)
	return nil
}

// GetCertificate returns the current certificate, first reading the files
// again when they changed (tls.Config.GetCertificate). It blocks only on a
// reload's file reads.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	now := time.Now().UnixNano()
	if last := r.lastCheck.Load(); now-last >= int64(r.CheckEvery) && r.lastCheck.CompareAndSwap(last, now) {
		if *r.stamp.Load() != r.stamps() {
			r.mu.Lock()
			if *r.stamp.Load() != r.stamps() {
				if err := r.load(); err != nil {
					r.log.Error("TLS certificate reload failed, previous one kept", "err", err)
				}
			}
			r.mu.Unlock()
		}
	}
	return r.cur.Load(), nil
}
