package nodeproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/clusterdns/clusterdns/registry"
)

// DefaultHealthTimeout is how long a queued change may wait for its sync
// before /healthz reports the proxy unhealthy: kube-proxy's default (twice
// its 30 s sync period).
const DefaultHealthTimeout = time.Minute

// ProxyHealth is the node proxy's own health as kube-proxy reports it on
// /healthz and /livez: healthy unless a change has been waiting longer
// than the timeout for a sync that has not happened. The Tracker calls
// QueuedUpdate when a change arrives, the Runner Updated after each
// successful sync. Safe for concurrent use; nothing in it blocks.
type ProxyHealth struct {
	timeout time.Duration
	now     func() time.Time

	mu           sync.Mutex
	lastUpdated  time.Time
	oldestQueued time.Time // zero when nothing waits
	ineligible   bool      // the Node is being deleted (see SetNodeEligible)
}

// SetNodeEligible records whether this node should receive traffic: not
// when its Node is being deleted or carries the cluster autoscaler's
// ToBeDeletedByClusterAutoscaler taint. /healthz (not /livez) reports an
// ineligible node as unhealthy, as kube-proxy does, so that load balancers
// drain it.
func (h *ProxyHealth) SetNodeEligible(eligible bool) {
	h.mu.Lock()
	h.ineligible = !eligible
	h.mu.Unlock()
}

// NewProxyHealth returns a health state that is healthy until a change
// waits longer than timeout (DefaultHealthTimeout when 0).
func NewProxyHealth(timeout time.Duration) *ProxyHealth {
	if timeout <= 0 {
		timeout = DefaultHealthTimeout
	}
	return &ProxyHealth{timeout: timeout, now: time.Now}
}

// QueuedUpdate notes that a change waits for a sync (only the oldest
// waiting change counts). A nil *ProxyHealth ignores it.
func (h *ProxyHealth) QueuedUpdate() {
	if h == nil {
		return
	}
	h.mu.Lock()
	if h.oldestQueued.IsZero() {
		h.oldestQueued = h.now()
	}
	h.mu.Unlock()
}

// Updated notes a successful sync of everything queued before it.
func (h *ProxyHealth) Updated() {
	if h == nil {
		return
	}
	h.mu.Lock()
	h.oldestQueued, h.lastUpdated = time.Time{}, h.now()
	h.mu.Unlock()
}

// Healthy reports whether no change has waited longer than the timeout,
// and when rules were last synced.
func (h *ProxyHealth) Healthy() (bool, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.oldestQueued.IsZero() || h.now().Sub(h.oldestQueued) < h.timeout, h.lastUpdated
}

// ServeHTTP answers /healthz and /livez as kube-proxy does: 200 when
// healthy, 503 when not, with a JSON body of the last update and the
// current time; /healthz adds nodeEligible and is unhealthy when the node
// is not.
func (h *ProxyHealth) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	healthy, last := h.Healthy()
	h.mu.Lock()
	eligible := !h.ineligible
	h.mu.Unlock()
	livez := r.URL.Path == "/livez"
	if !livez {
		healthy = healthy && eligible
	}
	now := h.now()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if healthy {
		last = now // kube-proxy's convention: a healthy proxy is current
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if livez {
		fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q}`, last, now)
		return
	}
	fmt.Fprintf(w, `{"lastUpdated": %q,"currentTime": %q, "nodeEligible": %v}`, last, now, eligible)
}

// ServiceHealth serves the health-check node ports of the services with
// externalTrafficPolicy Local, as kube-proxy does, so that an external
// load balancer sends traffic only to nodes with an endpoint: one HTTP
// listener per port, answering 200 when this node has local endpoints (and
// the proxy is healthy), 503 when not, with a JSON body naming the service
// and its localEndpoints count. The Proxier updates it after each sync.
// Safe for concurrent use; Set opens and closes listeners.
type ServiceHealth struct {
	log     *slog.Logger
	healthy func() bool
	listen  func(port int32) (net.Listener, error)

	mu       sync.Mutex
	services map[registry.Key]*hcServer
}

type hcServer struct {
	port  int32
	local int
	srv   *http.Server
}

// NewServiceHealth returns a server of health-check ports that listens on
// every address of the node. proxy may be nil (always healthy).
func NewServiceHealth(log *slog.Logger, proxy *ProxyHealth) *ServiceHealth {
	if log == nil {
		log = slog.Default()
	}
	healthy := func() bool { return true }
	if proxy != nil {
		healthy = func() bool { ok, _ := proxy.Healthy(); return ok }
	}
	return &ServiceHealth{
		log: log, healthy: healthy, services: map[registry.Key]*hcServer{},
		listen: func(port int32) (net.Listener, error) {
			return net.Listen("tcp", ":"+strconv.Itoa(int(port)))
		},
	}
}

// Set records service k's health-check port and local endpoint count,
// opening its listener when the port is new; port 0 removes the service
// (and closes its listener). A port that cannot be opened is logged and
// retried at the next Set.
func (s *ServiceHealth) Set(k registry.Key, port int32, local int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	hc := s.services[k]
	if hc != nil && hc.port != port {
		hc.srv.Close()
		delete(s.services, k)
		s.log.Info("health-check port closed", "service", k.String(), "port", hc.port)
		hc = nil
	}
	if port <= 0 {
		return
	}
	if hc == nil {
		ln, err := s.listen(port)
		if err != nil {
			s.log.Error("health-check port not opened", "service", k.String(), "port", port, "err", err)
			return
		}
		hc = &hcServer{port: port}
		hc.srv = &http.Server{Handler: s.handler(k), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hc.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("health-check port stopped", "service", k.String(), "port", port, "err", err)
			}
		}()
		s.services[k] = hc
		s.log.Info("health-check port opened", "service", k.String(), "port", port)
	}
	hc.local = local
}

// keys returns the services that have a health-check port.
func (s *ServiceHealth) keys() []registry.Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]registry.Key, 0, len(s.services))
	for k := range s.services {
		out = append(out, k)
	}
	return out
}

// Close closes every listener.
func (s *ServiceHealth) Close(ctx context.Context) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, hc := range s.services {
		hc.srv.Shutdown(ctx)
		delete(s.services, k)
	}
}

func (s *ServiceHealth) handler(k registry.Key) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		hc := s.services[k]
		local := 0
		if hc != nil {
			local = hc.local
		}
		s.mu.Unlock()
		healthy := s.healthy()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if local > 0 && healthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		fmt.Fprintf(w, "{\n\t\"service\": {\n\t\t\"namespace\": %q,\n\t\t\"name\": %q\n\t},\n\t\"localEndpoints\": %d,\n\t\"serviceProxyHealthy\": %v\n}",
			k.Namespace, k.Name, local, healthy)
	})
}

// hcState is a service's health-check port and its number of endpoints
// on this node.
type hcState struct {
	port  int32
	local int
}

// healthOf returns the health-check state of a service: its port when it
// has externalTrafficPolicy Local and a healthCheckNodePort, and how many
// distinct endpoint addresses of this node serve it (in the family with
// the most).
func healthOf(e *registry.ServiceEntry, ports []*servicePort) hcState {
	if e == nil || e.Traffic == nil || e.Traffic.HealthCheckNodePort <= 0 || !e.ExternalTrafficLocal {
		return hcState{}
	}
	// Per family, as kube-proxy's per-family proxiers count: a dual-stack
	// pod is one endpoint, not two.
	local := map[family]map[netip.Addr]bool{}
	n := 0
	for _, p := range ports {
		f := p.ID.Family
		if local[f] == nil {
			local[f] = map[netip.Addr]bool{}
		}
		for _, ep := range p.LocalEndpoints {
			local[f][ep.Addr()] = true
		}
		n = max(n, len(local[f]))
	}
	return hcState{port: e.Traffic.HealthCheckNodePort, local: n}
}
