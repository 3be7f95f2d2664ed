package nodeproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// NetlinkElements is the ElementWriter for nodes: it sends each batch as
// one nf_tables netlink transaction (github.com/google/nftables), without
// an nft process and without nft's cache of the table. The encoding of
// every layout is checked against nft's own by TestNetlinkElementsEncodeAsNft.
type NetlinkElements struct {
	table   *nftables.Table
	netns   *os.File // the network namespace it was made in
	layouts map[string]elemLayout

	mu sync.Mutex
	// lasting is the socket of small batches, kept open: closing a
	// netfilter netlink socket waits for the kernel to free what the
	// transactions before deleted (an RCU grace period: 5-50 ms measured
	// on a loaded machine), which would be most of an endpoint change.
	// nil until first needed and after an error.
	lasting *nftables.Conn
}

// Batches of at most lastingMaxOps operations go through the kept-open
// socket, whose buffers are forced to lastingBuffer bytes (enough for
// them: an element is under 200 bytes); larger ones (full syncs) open a
// socket of their own with buffers of their size.
const (
	lastingMaxOps = 10000
	lastingBuffer = 4 << 20
)

// NewNetlinkElements returns an ElementWriter for the inet table of that
// name in the network namespace of the calling thread (kept open until
// Close, so that later batches go there whichever thread sends them). A
// caller that moved a thread into another namespace must call it with the
// goroutine locked to that thread (runtime.LockOSThread), as the tests do.
func NewNetlinkElements(table string) (*NetlinkElements, error) {
	ns, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	return &NetlinkElements{
		table:   &nftables.Table{Name: table, Family: nftables.TableFamilyINet},
		netns:   ns,
		layouts: elementLayouts(),
	}, nil
}

// Close closes the kept-open socket and the network namespace handle.
func (w *NetlinkElements) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLasting()
	return w.netns.Close()
}

// lastingConn returns the kept-open connection, dialling it when needed.
// w.mu is held.
func (w *NetlinkElements) lastingConn() (*nftables.Conn, error) {
	if w.lasting != nil {
		return w.lasting, nil
	}
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(w.netns.Fd())),
		nftables.WithSockOptions(func(c *netlink.Conn) error { return forceBuffers(c, lastingBuffer, lastingBuffer) }))
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	w.lasting = conn
	return conn, nil
}

// dropLasting closes the kept-open connection (after an error its unread
// answers would be taken for the next batch's). w.mu is held.
func (w *NetlinkElements) dropLasting() {
	if w.lasting != nil {
		_ = w.lasting.CloseLasting()
		w.lasting = nil
	}
}

// Handles reports whether WriteElements writes the elements of set.
func (w *NetlinkElements) Handles(set string) bool {
	_, ok := w.layouts[set]
	return ok
}

// Objects implements ElementWriter.
func (w *NetlinkElements) Objects(ctx context.Context) (map[string][]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	conn, err := w.lastingConn()
	if err != nil {
		return nil, err
	}
	chains, err := conn.ListChainsOfTableFamily(w.table.Family)
	if err != nil {
		w.dropLasting()
		return nil, fmt.Errorf("list chains: %w", err)
	}
	objs := map[string][]string{}
	for _, c := range chains {
		if c.Table.Name == w.table.Name {
			objs["chain"] = append(objs["chain"], c.Name)
		}
	}
	sets, err := conn.GetSets(w.table)
	if err != nil {
		w.dropLasting()
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		kind := "set"
		if s.IsMap {
			kind = "map"
		}
		objs[kind] = append(objs[kind], s.Name)
	}
	return objs, nil
}

// maxElemListBytes bounds one message's nested element list: a netlink
// attribute's length is 16 bits. A batch holds as many messages as needed.
const maxElemListBytes = 60 << 10

// WriteElements implements ElementWriter. The whole batch goes out in one
// sendmsg (the kernel applies a batch per message buffer), so the socket's
// buffers are forced to its size as nft does. It clears b.Delete and b.Add
// as it encodes them, so that a full sync's 200,000 element objects are
// not all alive beside their encoding. ctx is not consulted once the batch
// is sent: the kernel answers it in one go.
func (w *NetlinkElements) WriteElements(ctx context.Context, b *ElementBatch) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var size, messages int
	var conn *nftables.Conn
	if len(b.Flush)+len(b.Delete)+len(b.Add) <= lastingMaxOps {
		conn, err = w.lastingConn()
	} else {
		// The options run when Flush dials, once size and messages are
		// known.
		conn, err = nftables.New(nftables.WithNetNSFd(int(w.netns.Fd())), nftables.WithSockOptions(
			func(c *netlink.Conn) error { return forceBuffers(c, size+64<<10, messages*1024+256<<10) }))
	}
	if err != nil {
		return err
	}
	lasting := conn == w.lasting
	defer func() {
		if err != nil && lasting {
			w.dropLasting()
		}
	}()
	for _, name := range b.Flush {
		conn.FlushSet(&nftables.Set{Table: w.table, Name: name})
		messages++
	}
	send := func(elems []*knftables.Element, add bool) error {
		var chunk []nftables.SetElement
		var set string
		chunkBytes := 0
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			s := &nftables.Set{Table: w.table, Name: set}
			var err error
			if add {
				err = conn.SetAddElements(s, chunk)
			} else {
				err = conn.SetDeleteElements(s, chunk)
			}
			size += chunkBytes + 128
			messages++
			chunk, chunkBytes = chunk[:0], 0
			return err
		}
		for i, e := range elems {
			elems[i] = nil // encoded below: the GC may have it
			name := elemSet(e)
			l, ok := w.layouts[name]
			if !ok {
				return fmt.Errorf("element of %s: not a set that netlink writes", name)
			}
			se, err := encodeElement(l, e, add)
			if err != nil {
				return fmt.Errorf("element %s of %s: %w", strings.Join(e.Key, " . "), name, err)
			}
			n := elemBytes(&se)
			if name != set || chunkBytes+n > maxElemListBytes {
				if err := flush(); err != nil {
					return err
				}
				set = name
			}
			chunk = append(chunk, se)
			chunkBytes += n
		}
		return flush()
	}
	nDel, nAdd := len(b.Delete), len(b.Add)
	if err = send(b.Delete, false); err != nil {
		return fmt.Errorf("netlink element delete: %w", err)
	}
	if err = send(b.Add, true); err != nil {
		return fmt.Errorf("netlink element add: %w", err)
	}
	if err = conn.Flush(); err != nil {
		return fmt.Errorf("netlink batch of %d flushes, %d deletes, %d adds: %w",
			len(b.Flush), nDel, nAdd, err)
	}
	return nil
}

// elemBytes is an upper bound of the encoded size of an element in a
// message's element list (attribute headers and padding included).
func elemBytes(e *nftables.SetElement) int {
	n := 4 + 8 + len(e.Key) + 4 // the element, its key nest and value
	if len(e.Val) > 0 {
		n += 8 + len(e.Val) + 4
	}
	if e.VerdictData != nil {
		n += 4 + 4 + 8 + 4 + len(e.VerdictData.Chain) + 1 + 4
	}
	if e.Comment != "" {
		n += 4 + 2 + len(e.Comment) + 1 + 4
	}
	return n + 8
}

// forceBuffers sets the socket's send and receive buffers past the
// system's limits (SO_SNDBUFFORCE, SO_RCVBUFFORCE: needs CAP_NET_ADMIN).
func forceBuffers(c *netlink.Conn, send, recv int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, send),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, recv))
	}); err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("netlink socket buffers: %w", serr)
	}
	return nil
}

// encodeElement turns an element's nft words into the kernel's bytes:
// its key, and (when add) its value or verdict and its comment.
func encodeElement(l elemLayout, e *knftables.Element, add bool) (nftables.SetElement, error) {
	var se nftables.SetElement
	var err error
	if se.Key, err = encodeFields(l.key, e.Key); err != nil {
		return se, fmt.Errorf("key: %w", err)
	}
	if !add {
		return se, nil
	}
	if e.Comment != nil {
		se.Comment = *e.Comment
	}
	switch {
	case l.verdict:
		if len(e.Value) != 1 {
			return se, fmt.Errorf("verdict %q: want one word", e.Value)
		}
		v, err := parseVerdict(e.Value[0])
		if err != nil {
			return se, err
		}
		se.VerdictData = v
	case l.value != nil:
		if se.Val, err = encodeFields(l.value, e.Value); err != nil {
			return se, fmt.Errorf("value: %w", err)
		}
	}
	return se, nil
}

// parseVerdict reads the verdicts the rules write: drop, or goto a chain.
func parseVerdict(s string) (*expr.Verdict, error) {
	if s == "drop" {
		return &expr.Verdict{Kind: expr.VerdictDrop}, nil
	}
	if chain, ok := strings.CutPrefix(s, "goto "); ok && chain != "" {
		return &expr.Verdict{Kind: expr.VerdictGoto, Chain: chain}, nil
	}
	return nil, fmt.Errorf("verdict %q: want drop or goto <chain>", s)
}

// encodeFields concatenates the encoded words, each padded to 4 bytes.
func encodeFields(fields []field, words []string) ([]byte, error) {
	if len(words) != len(fields) {
		return nil, fmt.Errorf("%d words for %d fields", len(words), len(fields))
	}
	out := make([]byte, 0, 4*len(fields)+12*2)
	for i, f := range fields {
		w := words[i]
		switch f {
		case fieldAddr:
			a, err := netip.ParseAddr(w)
			if err != nil {
				return nil, err
			}
			out = append(out, a.AsSlice()...)
		case fieldProto:
			p, err := protoNumber(w)
			if err != nil {
				return nil, err
			}
			out = append(out, p, 0, 0, 0)
		case fieldPort:
			n, err := strconv.ParseUint(w, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("port: %w", err)
			}
			out = binary.BigEndian.AppendUint16(out, uint16(n))
			out = append(out, 0, 0)
		case fieldSlot:
			n, err := strconv.ParseUint(w, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("slot: %w", err)
			}
			out = binary.NativeEndian.AppendUint32(out, uint32(n))
		}
	}
	return out, nil
}

// protoNumber is the IP protocol number of a protocol served.
func protoNumber(name string) (byte, error) {
	switch name {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	case "sctp":
		return unix.IPPROTO_SCTP, nil
	}
	return 0, fmt.Errorf("protocol %q", name)
}

// netlinkStream is NetlinkElements' stream: a socket of its own (a full
// sync's batch is large: its buffers are forced to the batch's size when
// Send dials) and, per set, the elements encoded since its last message.
type netlinkStream struct {
	w        *NetlinkElements
	conn     *nftables.Conn
	size     int // bytes of the messages so far
	messages int
	pending  map[string]*pendingElems
}

type pendingElems struct {
	elems []nftables.SetElement
	bytes int
}

// Stream implements ElementWriter.
func (w *NetlinkElements) Stream(flush []string) (ElementStream, error) {
	s := &netlinkStream{w: w, pending: map[string]*pendingElems{}}
	conn, err := nftables.New(nftables.WithNetNSFd(int(w.netns.Fd())), nftables.WithSockOptions(
		func(c *netlink.Conn) error { return forceBuffers(c, s.size+64<<10, s.messages*1024+256<<10) }))
	if err != nil {
		return nil, fmt.Errorf("netlink: %w", err)
	}
	s.conn = conn
	for _, name := range flush {
		conn.FlushSet(&nftables.Set{Table: w.table, Name: name})
		s.messages++
	}
	return s, nil
}

// Add implements ElementStream: the element is encoded at once, and a
// set's encoded elements become a message when they reach the attribute
// limit.
func (s *netlinkStream) Add(e *knftables.Element) error {
	name := elemSet(e)
	l, ok := s.w.layouts[name]
	if !ok {
		return fmt.Errorf("element of %s: not a set that netlink writes", name)
	}
	se, err := encodeElement(l, e, true)
	if err != nil {
		return fmt.Errorf("element %s of %s: %w", strings.Join(e.Key, " . "), name, err)
	}
	p := s.pending[name]
	if p == nil {
		p = &pendingElems{}
		s.pending[name] = p
	}
	n := elemBytes(&se)
	if p.bytes+n > maxElemListBytes {
		if err := s.emit(name, p); err != nil {
			return err
		}
	}
	p.elems = append(p.elems, se)
	p.bytes += n
	return nil
}

// emit turns a set's pending elements into one message.
func (s *netlinkStream) emit(name string, p *pendingElems) error {
	if len(p.elems) == 0 {
		return nil
	}
	if err := s.conn.SetAddElements(&nftables.Set{Table: s.w.table, Name: name}, p.elems); err != nil {
		return fmt.Errorf("elements of %s: %w", name, err)
	}
	s.size += p.bytes + 128
	s.messages++
	clear(p.elems)
	p.elems, p.bytes = p.elems[:0], 0
	return nil
}

// Send implements ElementStream.
func (s *netlinkStream) Send(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, name := range sortedKeys(s.pending) {
		if err := s.emit(name, s.pending[name]); err != nil {
			return err
		}
	}
	if err := s.conn.Flush(); err != nil {
		return fmt.Errorf("netlink batch of %d messages: %w", s.messages, err)
	}
	return nil
}
