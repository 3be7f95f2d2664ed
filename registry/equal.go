package registry

import "reflect"

// The slim objects are small plain values; deep equality tells whether an
// update from a source really changed anything (the file source re-reads
// whole files, the Kubernetes watch resends on resync).

func equalService(a, b *Service) bool      { return a == b || reflect.DeepEqual(a, b) }
func equalSlice(a, b *EndpointSlice) bool  { return a == b || reflect.DeepEqual(a, b) }
func equalPod(a, b *Pod) bool              { return a == b || reflect.DeepEqual(a, b) }
func equalImport(a, b *ServiceImport) bool { return a == b || reflect.DeepEqual(a, b) }
