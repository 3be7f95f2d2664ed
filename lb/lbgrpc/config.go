package lbgrpc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/serviceconfig"

	"github.com/clusterdns/clusterdns/lb"
)

// Config is the load-balancing configuration of every balancer of this
// package, given in the service config under the balancer's name, e.g.
//
//	{"loadBalancingConfig":[{"clusterdns_p2c":{"zone":"zone-a","outlier":{"consecutiveFailures":5}}}]}
//
// All fields are optional. grpc calls ParseConfig (on the balancer builder)
// with the JSON; unknown fields are an error, so that a misspelt option does
// not silently do nothing.
type Config struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	// Zone is the client's zone: when at least MinZoneEndpoints ready
	// endpoints of the best SRV priority are in it (zones come from the
	// clusterdns server's TXT zone hints), only those are used.
	Zone string `json:"zone,omitempty"`
	// MinZoneEndpoints is the minimum for zone preference. Default 2.
	MinZoneEndpoints int `json:"minZoneEndpoints,omitempty"`
	// HashKey names the request metadata key whose value feeds consistent
	// hashing (clusterdns_maglev). A key set with lb.WithHashKey on the RPC's
	// context wins over it and costs no allocation.
	HashKey string `json:"hashKey,omitempty"`
	// Outlier configures ejection after consecutive failures.
	Outlier OutlierConfig `json:"outlier,omitzero"`
	// LatencyDecay is the time constant of each endpoint's latency
	// estimate, which clusterdns_p2c weighs (lb.BalancerConfig.LatencyDecay),
	// as a duration string. Default "1s".
	LatencyDecay Duration `json:"latencyDecay,omitzero"`
}

// OutlierConfig configures passive outlier ejection (lb.OutlierConfig): an
// endpoint whose RPCs end ConsecutiveFailures times in a row with one of
// FailureCodes is left out of picks for BaseEjection × (ejections in a row),
// at most MaxEjection, and for at most MaxEjectionPercent of the endpoints.
type OutlierConfig struct {
	// ConsecutiveFailures before ejection. Default 3; negative disables it.
	ConsecutiveFailures int `json:"consecutiveFailures,omitempty"`
	// BaseEjection is a duration string ("30s"). Default 30s.
	BaseEjection Duration `json:"baseEjection,omitzero"`
	// MaxEjection is a duration string ("5m"). Default 5m.
	MaxEjection Duration `json:"maxEjection,omitzero"`
	// MaxEjectionPercent bounds the share of ejected endpoints. Default 50.
	MaxEjectionPercent int `json:"maxEjectionPercent,omitempty"`
	// FailureCodes are the status codes that count as failures, as names
	// ("UNAVAILABLE") or numbers. Default: UNAVAILABLE only. Other codes are
	// answers from a working server; CANCELLED is never counted.
	FailureCodes []codes.Code `json:"failureCodes,omitempty"`
}

// Duration is a time.Duration written in JSON as a Go duration string.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("duration %q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// parseConfig decodes and checks a balancer's JSON configuration.
func parseConfig(name string, js json.RawMessage) (*Config, error) {
	cfg := &Config{}
	if len(bytes.TrimSpace(js)) > 0 && string(bytes.TrimSpace(js)) != "null" {
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(cfg); err != nil {
			return nil, fmt.Errorf("lbgrpc: %s config %s: %w", name, js, err)
		}
	}
	if cfg.MinZoneEndpoints < 0 || cfg.Outlier.MaxEjectionPercent < 0 || cfg.Outlier.MaxEjectionPercent > 100 {
		return nil, fmt.Errorf("lbgrpc: %s config %s: minZoneEndpoints must be ≥ 0 and maxEjectionPercent within 0..100", name, js)
	}
	for _, c := range cfg.Outlier.FailureCodes {
		if c > maxCode {
			return nil, fmt.Errorf("lbgrpc: %s config %s: unknown status code %d", name, js, c)
		}
	}
	return cfg, nil
}

// maxCode is the largest status code (UNAUTHENTICATED).
const maxCode = codes.Unauthenticated

// failureMask returns the bit set of the codes counted as failures.
func (c *Config) failureMask() uint32 {
	if len(c.Outlier.FailureCodes) == 0 {
		return 1 << codes.Unavailable
	}
	var m uint32
	for _, code := range c.Outlier.FailureCodes {
		if code != codes.Canceled && code != codes.OK {
			m |= 1 << code
		}
	}
	return m
}

// balancerConfig is the lb.BalancerConfig of a grpc balancer with this config.
func (c *Config) balancerConfig(name string, policy lb.Policy) lb.BalancerConfig {
	return lb.BalancerConfig{
		Name:             name,
		Policy:           policy,
		Zone:             c.Zone,
		MinZoneEndpoints: c.MinZoneEndpoints,
		LatencyDecay:     time.Duration(c.LatencyDecay),
		Outlier: lb.OutlierConfig{
			ConsecutiveFailures: c.Outlier.ConsecutiveFailures,
			BaseEjection:        time.Duration(c.Outlier.BaseEjection),
			MaxEjection:         time.Duration(c.Outlier.MaxEjection),
			MaxEjectionPercent:  c.Outlier.MaxEjectionPercent,
		},
	}
}
