package nodeproxy

import (
	"context"

	"sigs.k8s.io/knftables"
)

// ElementWriter applies the set and map elements of a sync in one atomic
// step of its own, after the nft transaction that created what they refer
// to and before the one that deletes what they no longer refer to. Only
// elements of the sets that it Handles are given to it; the rest
// (interval sets: pod CIDRs, NodePort addresses, LoadBalancer source
// ranges) stay nft text. With no ElementWriter the Proxier writes every
// element into its one nft transaction (the golden tests, and the
// fallback). NetlinkElements is the implementation for nodes.
type ElementWriter interface {
	// WriteElements empties the sets and maps named in b.Flush, deletes
	// b.Delete and adds b.Add, all or nothing. It blocks until the kernel
	// has answered.
	WriteElements(ctx context.Context, b *ElementBatch) error
	// Handles reports whether the elements of the set or map of that
	// name are the writer's; it must not block.
	Handles(set string) bool
	// Stream starts a batch that empties the sets and maps in flush and
	// then adds the elements given to its Add, encoded as they come (a
	// full sync's: they need not all be kept); Send applies it all or
	// nothing. Neither blocks but Send, for the kernel.
	Stream(flush []string) (ElementStream, error)
	// Objects lists the names of the table's chains, sets and maps (keys
	// "chain", "set", "map", as knftables' ListAll), without their rules
	// and elements. It blocks for the kernel.
	Objects(ctx context.Context) (map[string][]string, error)
}

// ElementStream is a batch given element by element (ElementWriter.Stream).
type ElementStream interface {
	// Add adds one element of a set or map the writer handles.
	Add(e *knftables.Element) error
	// Send applies the batch: the flushes, then the elements.
	Send(ctx context.Context) error
}

// ElementBatch is one atomic step of an ElementWriter. Each element names
// its set or map (Set or Map) and gives its key and value as nft text
// words, as knftables writes them.
type ElementBatch struct {
	Flush  []string
	Delete []*knftables.Element
	Add    []*knftables.Element
}

// field is one part of a concatenated key or value, as the kernel stores
// it: every part padded to a multiple of 4 bytes.
type field uint8

const (
	fieldAddr  field = iota // ipv4_addr (4 bytes) or ipv6_addr (16), network order
	fieldProto              // inet_proto: 1 byte
	fieldPort               // inet_service: 2 bytes, network order
	fieldSlot               // `numgen random mod N`: a 32-bit integer in host order
)

// elemLayout is how the elements of one set or map are encoded.
type elemLayout struct {
	key, value []field
	verdict    bool // the value is a verdict (goto chain, drop)
}

// elementLayouts returns the layouts of the table's sets and maps whose
// elements an ElementWriter writes: every shared set and map but the
// interval sets. The one place that ties set names to their types besides
// baseObjects, which declares them; TestNetlinkElementsEncodeAsNft checks
// the two agree.
func elementLayouts() map[string]elemLayout {
	m := map[string]elemLayout{}
	addrProtoPort := []field{fieldAddr, fieldProto, fieldPort}
	protoPort := []field{fieldProto, fieldPort}
	endpoint := []field{fieldAddr, fieldPort}
	for _, f := range []family{ipv4, ipv6} {
		m[serviceIPsMap(f)] = elemLayout{key: addrProtoPort, verdict: true}
		m[serviceNodePortsMap(f)] = elemLayout{key: protoPort, verdict: true}
		m[noEndpointServicesSet(f)] = elemLayout{key: addrProtoPort}
		m[noEndpointNodePortsSet(f)] = elemLayout{key: protoPort}
		m[firewallSet(f)] = elemLayout{key: addrProtoPort}
		m[hairpinSet(f)] = elemLayout{key: []field{fieldAddr, fieldAddr}}
		for _, pr := range protocols {
			byAddr := elemLayout{key: []field{fieldAddr, fieldPort, fieldSlot}, value: endpoint}
			byPort := elemLayout{key: []field{fieldPort, fieldSlot}, value: endpoint}
			m[endpointsMap(f, pr)] = byAddr
			m[localEndpointsMap(f, pr)] = byAddr
			m[nodePortEndpointsMap(f, pr)] = byPort
			m[nodePortLocalEndpointsMap(f, pr)] = byPort
		}
	}
	return m
}
