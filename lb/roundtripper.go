package lb

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// RoundTripper is an http.RoundTripper that balances every request (not every
// connection) over the endpoints of a balanced service name.
//
// Design: http.Transport pools connections per host, so one Transport with a
// balancing dialer would reuse whatever connections it has and never spread
// requests. RoundTripper instead picks an endpoint per request and sends the
// request through that endpoint's own http.Transport (a clone of base whose
// dialer always connects to that endpoint). Keep-alive therefore still works, per
// endpoint. The request is unchanged: URL, Host header and TLS server name stay
// the service name, so certificates for the service name verify.
//
// The endpoint is outstanding until the response body is closed or read to the
// end. A transport error counts as a failure of the endpoint; a response of any
// status is a success. A connection failure (*DialError, e.g. connection
// refused) is retried on another endpoint, up to Config.MaxAttempts, whatever the
// method, because nothing was sent; the request body must then be replayable
// (nil, http.NoBody, or GetBody set, as http.NewRequest does for in-memory
// bodies). An endpoint removed from DNS gets no new request; its transport's
// idle connections are closed.
//
// Requests to names the Pool does not balance go through base unchanged.
type RoundTripper struct {
	pool *Pool
	base *http.Transport

	mu         sync.Mutex
	transports map[*Endpoint]*http.Transport
	closed     chan struct{}
	closeOnce  sync.Once
}

// NewRoundTripper returns a RoundTripper balancing through p. base provides the
// transport settings (timeouts, TLS, idle limits) cloned for each endpoint; its
// Proxy and DialTLSContext are not used for balanced names. nil base means a
// clone of http.DefaultTransport with MaxIdleConnsPerHost 64.
func NewRoundTripper(p *Pool, base *http.Transport) *RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
		base.MaxIdleConnsPerHost = 64
	}
	return &RoundTripper{pool: p, base: base, transports: make(map[*Endpoint]*http.Transport), closed: make(chan struct{})}
}

// RoundTrip implements http.RoundTripper. It may block waiting for the
// service's first resolution and for the request itself, bounded by the
// request's context.
func (rt *RoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	b, ok, err := rt.pool.balancerFor(hostPort(req))
	if err != nil {
		closeBody(req)
		return nil, err
	}
	if !ok {
		return rt.base.RoundTrip(req)
	}
	ctx := req.Context()
	if err := b.WaitReady(ctx); err != nil {
		closeBody(req)
		return nil, err
	}
	key := hashKeyFrom(ctx)
	var triedBuf [4]*Endpoint
	tried := triedBuf[:0]
	var errs []error
	r := req
	for attempt := 1; ; attempt++ {
		e, err := pickAvoiding(b, key, tried)
		if err != nil {
			closeBody(r)
			return nil, errors.Join(append(errs, err)...)
		}
		tr := rt.transportFor(e)
		start := time.Now()
		resp, err := tr.RoundTrip(r)
		if err == nil {
			// Time to the response header is the endpoint's latency; the
			// pick stays outstanding until the body is done.
			e.latency.Observe(time.Since(start))
			e.report(nil)
			resp.Body = wrapBody(resp.Body, e, tr)
			return resp, nil
		}
		e.Done(err)
		errs = append(errs, err)
		var derr *DialError
		if !errors.As(err, &derr) || attempt >= rt.pool.cfg.MaxAttempts || ctx.Err() != nil {
			return nil, errors.Join(errs...)
		}
		if r, err = rewind(req); err != nil {
			return nil, errors.Join(append(errs, err)...)
		}
		if len(tried) < cap(tried) {
			tried = append(tried, e)
		}
	}
}

// hostPort returns the request's "host:port", with the scheme's default port.
func hostPort(req *http.Request) string {
	if req.URL.Port() != "" {
		return req.URL.Host
	}
	port := "80"
	if req.URL.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(req.URL.Hostname(), port)
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

var errNotReplayable = errors.New("lb: cannot retry on another endpoint: request body cannot be replayed (no GetBody)")

// rewind returns a request to send again after the transport consumed (closed)
// the original body.
func rewind(req *http.Request) (*http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	if req.GetBody == nil {
		return nil, errNotReplayable
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	r := *req
	r.Body = body
	return &r, nil
}

// transportFor returns e's transport, creating it on first use.
func (rt *RoundTripper) transportFor(e *Endpoint) *http.Transport {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if tr := rt.transports[e]; tr != nil {
		return tr
	}
	tr := rt.base.Clone()
	tr.Proxy = nil
	tr.DialTLSContext = nil
	tr.DialTLS = nil // deprecated field, cleared too so TLS runs over DialContext
	dialer, addr := rt.pool.dialer, e.addr
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, &DialError{Addr: addr, Err: err}
		}
		return c, nil
	}
	rt.transports[e] = tr
	go func() {
		select {
		case <-e.Gone():
		case <-rt.closed:
		}
		rt.mu.Lock()
		delete(rt.transports, e)
		rt.mu.Unlock()
		tr.CloseIdleConnections()
	}()
	return tr
}

// CloseIdleConnections closes the idle connections of every endpoint transport
// and of base. http.Client.CloseIdleConnections calls it; it takes a lock
// briefly and does not wait for requests in flight.
func (rt *RoundTripper) CloseIdleConnections() {
	rt.mu.Lock()
	trs := make([]*http.Transport, 0, len(rt.transports))
	for _, tr := range rt.transports {
		trs = append(trs, tr)
	}
	rt.mu.Unlock()
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
	rt.base.CloseIdleConnections()
}

// Close closes idle connections and stops the goroutines watching endpoints.
// The RoundTripper must not be used afterwards. The Pool is not closed.
func (rt *RoundTripper) Close() {
	rt.closeOnce.Do(func() { close(rt.closed) })
	rt.CloseIdleConnections()
}

// endpointBody finishes the pick when the response body is done with.
type endpointBody struct {
	io.ReadCloser
	ep   *Endpoint
	tr   *http.Transport
	once sync.Once
}

// writableBody keeps the io.Writer of a 101 Switching Protocols body.
type writableBody struct {
	*endpointBody
	w io.Writer
}

func (b writableBody) Write(p []byte) (int, error) { return b.w.Write(p) }

func wrapBody(body io.ReadCloser, e *Endpoint, tr *http.Transport) io.ReadCloser {
	eb := &endpointBody{ReadCloser: body, ep: e, tr: tr}
	if w, ok := body.(io.Writer); ok {
		return writableBody{eb, w}
	}
	return eb
}

func (b *endpointBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.finish(err)
	}
	return n, err
}

func (b *endpointBody) Close() error {
	err := b.ReadCloser.Close()
	b.finish(nil)
	return err
}

func (b *endpointBody) finish(err error) {
	b.once.Do(func() {
		if err != nil && err != io.EOF {
			b.ep.report(err)
		}
		b.ep.release()
		if b.ep.Removed() {
			b.tr.CloseIdleConnections() // the connection just returned to a drained endpoint
		}
	})
}
