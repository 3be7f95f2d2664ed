package lb

import "context"

// HashKeyFrom returns the consistent-hashing key stored in ctx by WithHashKey,
// or 0 ("no key"). Integrations outside this package (the gRPC picker in
// lb/lbgrpc) call it on the pick path: it does not allocate.
func HashKeyFrom(ctx context.Context) uint64 { return hashKeyFrom(ctx) }
