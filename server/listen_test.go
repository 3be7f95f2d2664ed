package server

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestListenerServesUDPAndTCPAndRefusesATakenPort(t *testing.T) {
	h := exampleHandler(t, nil)
	l, err := Listen(h, ListenOptions{Addr: "127.0.0.1:0", UDPSockets: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve()
	defer l.Close()
	for _, netw := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: netw}
		m := new(dns.Msg)
		m.SetQuestion("web-server-service.default.svc.cluster.local.", dns.TypeA)
		r, _, err := c.Exchange(m, l.Addr().String())
		if err != nil || len(r.Answer) != 1 {
			t.Fatalf("%s: %v %v", netw, r, err)
		}
	}
	_, err = Listen(h, ListenOptions{Addr: l.Addr().String()}, nil)
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("a second listener on a taken port: %v, want address already in use", err)
	}
}
