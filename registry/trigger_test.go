package registry

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The controller's last-change-trigger-time annotation is kept (and only
// it: a bad value is no time, not an error).
func TestEndpointSliceTriggerTime(t *testing.T) {
	for _, c := range []struct {
		value string
		want  time.Time
	}{
		{"2026-12-07T02:50:01.123456789Z", time.Date(2026, 12, 7, 2, 50, 1, 123456789, time.UTC)},
		{"2026-12-07T02:50:01Z", time.Date(2026, 12, 7, 2, 50, 1, 0, time.UTC)},
		{"yesterday", time.Time{}},
		{"", time.Time{}},
	} {
		s := &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "db-1", Namespace: "default",
			Labels: map[string]string{ServiceNameLabel: "db"}}, AddressType: discoveryv1.AddressTypeIPv4}
		if c.value != "" {
			s.Annotations = map[string]string{corev1.EndpointsLastChangeTriggerTime: c.value}
		}
		got, err := ConvertEndpointSlice(s)
		if err != nil {
			t.Fatal(err)
		}
		if !got.TriggerTime.Equal(c.want) {
			t.Errorf("annotation %q: TriggerTime %v, want %v", c.value, got.TriggerTime, c.want)
		}
	}
}
