package server

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The UDP read loop on Linux: one recvmmsg takes up to udpBatch queries,
// their answers leave with one sendmmsg.
//
// Both calls are made on the non-blocking socket with RawSyscall, inside
// the socket's RawConn.Read: when the socket is empty the goroutine parks
// in the runtime's network poller as with any net.Conn read, and is woken
// when a query arrives. Raw calls never block (MSG_DONTWAIT), so telling
// the scheduler about them would buy nothing; telling it costs, because a
// syscall entered while the runtime's monitor thread sleeps wakes that
// thread. At a few thousand queries a second that was two futex wake-ups
// per query, about a third of the server's CPU.

const (
	// udpBatch is how many queries one recvmmsg may return.
	udpBatch = 16
	// udpQueryMax is the largest UDP query read whole; a longer datagram
	// is answered FORMERR from its header.
	udpQueryMax = 4096
	// udpAnswerCap is each answer buffer's capacity; a longer answer
	// (before truncation to the client's size) grows its own.
	udpAnswerCap = 4096
)

// mmsghdr is struct mmsghdr of recvmmsg(2) and sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// udpBatchBuf is one socket's buffers, owned by its read goroutine. The
// kernel writes into rx and reads from tx through the pointers in the
// headers; all of it lives on the heap, which never moves.
type udpBatchBuf struct {
	rx    [udpBatch]mmsghdr
	rxIov [udpBatch]unix.Iovec
	tx    [udpBatch]mmsghdr
	txIov [udpBatch]unix.Iovec
	names [udpBatch]unix.RawSockaddrInet6
	srcs  [udpBatch]netip.AddrPort
	in    [udpBatch][udpQueryMax]byte
	out   [udpBatch][]byte
	// send writes a deferred (forwarded) answer: one function for all
	// queries, made once, so that answering allocates nothing.
	send func(netip.AddrPort, []byte)
}

// newUDPBatchBuf returns the buffers with the headers' fixed parts set:
// each receive header points at its name and query buffer, each send
// header at its iovec. Per call only what the kernel or the answer changes
// is written (armRx, answerBatch).
func newUDPBatchBuf() *udpBatchBuf {
	b := new(udpBatchBuf)
	for i := range b.rx {
		b.rxIov[i].Base = &b.in[i][0]
		b.rxIov[i].SetLen(udpQueryMax)
		rx := &b.rx[i].hdr
		rx.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		rx.Iov = &b.rxIov[i]
		rx.SetIovlen(1)
		tx := &b.tx[i].hdr
		tx.Iov = &b.txIov[i]
		tx.SetIovlen(1)
		b.out[i] = make([]byte, 0, udpAnswerCap)
	}
	return b
}

// armRx resets the name lengths before a recvmmsg: the kernel writes each
// source's length over them (and the lengths and flags it returns).
func (b *udpBatchBuf) armRx() {
	for i := range b.rx {
		b.rx[i].hdr.Namelen = unix.SizeofSockaddrInet6
	}
}

// sockaddrPort decodes the source address the kernel wrote.
func sockaddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	raw := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(raw[2:4])
	switch {
	case sa.Family == unix.AF_INET && n >= unix.SizeofSockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port), true
	case sa.Family == unix.AF_INET6 && n >= unix.SizeofSockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), true
	}
	return netip.AddrPort{}, false
}

// rawMmsg makes one recvmmsg or sendmmsg call without blocking.
func rawMmsg(trap, fd uintptr, msgs []mmsghdr) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(trap, fd, uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// serveUDP answers the queries arriving on c until the listener closes.
func (l *Listener) serveUDP(c *net.UDPConn) {
	defer l.wg.Done()
	rc, err := c.SyscallConn()
	if err != nil {
		l.log.Error("udp socket", "err", err)
		return
	}
	b := newUDPBatchBuf()
	b.send = l.udpSender(c)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			for !l.closed.Load() {
				b.armRx()
				n, e := rawMmsg(unix.SYS_RECVMMSG, fd, b.rx[:])
				switch e {
				case 0:
				case unix.EAGAIN:
					return false // park until readable
				case unix.EINTR:
					continue
				default:
					rerr = e
					return true
				}
				l.answerBatch(c, fd, b, n)
				if n < udpBatch {
					// The kernel stopped at an empty queue: a query
					// arriving after that finds the queue empty and makes
					// the socket readable again, so park now rather than
					// spend one more recvmmsg learning EAGAIN (at a few
					// thousand queries a second, one syscall of four per
					// wake-up).
					return false
				}
			}
			rerr = net.ErrClosed
			return true
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("udp read", "err", err)
		}
	}
}

// answerBatch answers the n queries in b.rx and sends the answers.
func (l *Listener) answerBatch(c *net.UDPConn, fd uintptr, b *udpBatchBuf, n int) {
	rrl := l.opt.RRL
	ready := 0
	for i := 0; i < n; i++ {
		src, ok := sockaddrPort(&b.names[i], b.rx[i].hdr.Namelen)
		if !ok {
			continue
		}
		req := b.in[i][:b.rx[i].n]
		var resp []byte
		if b.rx[i].hdr.Flags&unix.MSG_TRUNC != 0 {
			l.h.Load().metrics.malformed.Add(1)
			resp = formErr(b.out[i], req)
		} else {
			resp = l.respond(req, b.out[i], src, false, b.send).Msg
		}
		if resp != nil && rrl != nil {
			resp = rrl.filter(src.Addr(), resp)
		}
		if resp == nil {
			continue
		}
		b.srcs[ready] = src
		b.txIov[ready].Base = &resp[0]
		b.txIov[ready].SetLen(len(resp))
		tx := &b.tx[ready].hdr
		tx.Name, tx.Namelen = b.rx[i].hdr.Name, b.rx[i].hdr.Namelen // reply to the source
		ready++
	}
	l.sendBatch(c, fd, b, ready)
}

// sendBatch sends the first n prepared answers. An answer the kernel
// refuses (a full send buffer, a filtered destination) is retried once
// through the blocking path, then dropped, as a lost UDP packet would be.
func (l *Listener) sendBatch(c *net.UDPConn, fd uintptr, b *udpBatchBuf, n int) {
	for sent := 0; sent < n; {
		k, e := rawMmsg(unix.SYS_SENDMMSG, fd, b.tx[sent:n])
		switch {
		case e == unix.EINTR:
			continue
		case e != 0:
			// The first remaining answer failed: send it the ordinary way.
			iov := b.txIov[sent]
			resp := unsafe.Slice(iov.Base, iov.Len)
			if _, err := c.WriteToUDPAddrPort(resp, b.srcs[sent]); err != nil && !errors.Is(err, net.ErrClosed) {
				l.log.Debug("udp write", "client", b.srcs[sent], "err", err)
			}
			sent++
		default:
			sent += k
		}
	}
}
