package lb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
)

// ZoneSource tells which zone each endpoint is in. The Source returned by
// Resolver.Source calls it after each successful lookup (on the Balancer's
// resolve goroutine); it may block on the network up to ctx's deadline.
// A nil ZoneSource, or one that knows nothing, leaves every endpoint zone-less,
// and zone preference then never applies.
type ZoneSource interface {
	// AnnotateZones sets eps[i].Zone for the endpoints it knows and leaves the
	// others alone. On error the caller keeps the zones it learnt before.
	AnnotateZones(ctx context.Context, t Target, eps []EndpointInfo) error
}

// TXTZones reads zones from DNS TXT records, in the format proposed to the
// clusterdns server (the server publishes nothing yet; without the records every
// endpoint is zone-less):
//
//   - per service, one query: TXT at "_zones.<svc>.<ns>.svc.<zone>", one record
//     per zone whose first string is "zone=<zone>" and whose other strings are
//     the endpoint IP addresses in that zone. This covers A/AAAA (headless)
//     answers, which carry no endpoint names, in one round trip.
//   - per endpoint: TXT "zone=<zone>" at the endpoint's hostname (the SRV target
//     "<hostname>.<svc>.<ns>.svc.<zone>"), queried only for SRV endpoints the
//     service record did not cover, at most MaxHostQueries per resolution.
//
// A "_zones" label (RFC 8552 style) keeps the service name itself free of TXT
// data, so its NODATA answer for TXT does not change.
type TXTZones struct {
	// Resolver performs the queries.
	Resolver *Resolver
	// MaxHostQueries bounds the per-endpoint queries per resolution. Default 64.
	MaxHostQueries int
}

// AnnotateZones implements ZoneSource.
func (z *TXTZones) AnnotateZones(ctx context.Context, t Target, eps []EndpointInfo) error {
	recs, err := z.Resolver.LookupTXT(ctx, "_zones."+t.Name)
	if err != nil {
		return fmt.Errorf("lb: zone records of %s: %w", t.Name, err)
	}
	byAddr := make(map[netip.Addr]string)
	for _, rec := range recs {
		zone := ""
		for _, s := range rec {
			if v, ok := strings.CutPrefix(s, "zone="); ok {
				zone = v
			}
		}
		for _, s := range rec {
			if a, err := netip.ParseAddr(s); err == nil && zone != "" {
				byAddr[a] = zone
			}
		}
	}
	limit := z.MaxHostQueries
	if limit <= 0 {
		limit = 64
	}
	var hosts []string
	hostIndex := make(map[string]int)
	for i := range eps {
		if zone, ok := byAddr[eps[i].Addr.Addr()]; ok {
			eps[i].Zone = zone
		} else if h := eps[i].Host; h != "" && len(hosts) < limit {
			if _, dup := hostIndex[h]; !dup {
				hostIndex[h] = len(hosts)
				hosts = append(hosts, h)
			}
		}
	}
	zones := make([]string, len(hosts))
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, z.Resolver.parallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			recs, err := z.Resolver.LookupTXT(ctx, h)
			errs[i] = err
			for _, rec := range recs {
				for _, s := range rec {
					if v, ok := strings.CutPrefix(s, "zone="); ok {
						zones[i] = v
					}
				}
			}
		})
	}
	wg.Wait()
	for i := range eps {
		if j, ok := hostIndex[eps[i].Host]; ok && eps[i].Zone == "" && errs[j] == nil {
			eps[i].Zone = zones[j]
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lb: zone records of %s endpoints: %w", t.Name, err)
	}
	return nil
}
