//go:build !linux

package server

import (
	"errors"
	"net"
)

// serveUDP answers the queries arriving on c until the listener closes:
// one read and one write per query (Linux batches them, udp_linux.go).
func (l *Listener) serveUDP(c *net.UDPConn) {
	defer l.wg.Done()
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535)
	rrl := l.opt.RRL
	send := l.udpSender(c)
	for {
		n, src, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("udp read", "err", err)
			continue
		}
		resp := l.respond(buf[:n], out, src, false, send).Msg
		if resp != nil && rrl != nil {
			resp = rrl.filter(src.Addr(), resp)
		}
		if resp != nil {
			if _, err := c.WriteToUDPAddrPort(resp, src); err != nil && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("udp write", "client", src, "err", err)
			}
		}
	}
}
