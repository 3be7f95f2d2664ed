package netnstest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SCTPSupported reports whether this kernel opens SCTP sockets, and why
// not when it does not (tests skip SCTP traffic then).
func SCTPSupported() (bool, string) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		return false, fmt.Sprintf("the kernel opens no SCTP socket: %v", err)
	}
	unix.Close(fd)
	return true, ""
}

// sctpSockaddr converts an address and port to a socket address.
func sctpSockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func sctpSocket(a netip.Addr) (int, error) {
	family := unix.AF_INET6
	if a.Is4() {
		family = unix.AF_INET
	}
	return unix.Socket(family, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
}

// serveSCTP answers each SCTP association on port (IPv4) with the
// backend's name, one-to-one style, until killed.
func serveSCTP(name string, port int) error {
	fd, err := sctpSocket(netip.IPv4Unspecified())
	if err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	buf := make([]byte, 64)
	for {
		c, _, err := unix.Accept(fd)
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		if _, err := unix.Read(c, buf); err == nil {
			unix.Write(c, []byte(name))
		}
		unix.Close(c)
	}
}

// askSCTP opens an SCTP association to addr, sends one message and
// prints the answer.
func askSCTP(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	fd, err := sctpSocket(ap.Addr())
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	if err := unix.Connect(fd, sctpSockaddr(ap)); err != nil {
		return fmt.Errorf("connect %s: %w", addr, err)
	}
	if _, err := unix.Write(fd, []byte("who")); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	buf := make([]byte, 64)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	fmt.Println(string(buf[:n]))
	return nil
}

// StartSCTP runs an SCTP backend that answers its name, in pod p on port.
func (tp *Topology) StartSCTP(p *Pod, name string, port int) *Process {
	return tp.Start(p.NS, []string{roleEnv + "=sctp", "NETNSTEST_NAME=" + name, "NETNSTEST_ADDR=" + strconv.Itoa(port)}, self(tp))
}

// SCTPAsk opens one SCTP association from pod p to addr and returns the
// backend's answer.
func (tp *Topology) SCTPAsk(p *Pod, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := Command(ctx, p.NS, self(tp))
	cmd.Env = append(os.Environ(), roleEnv+"=sctp-ask", "NETNSTEST_ADDR="+addr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sctp ask %s from %s: %w: %s", addr, p.NS, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
