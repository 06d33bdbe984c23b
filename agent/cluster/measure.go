package cluster

import (
	"context"
	"fmt"

	"github.com/ebbflow/ebbflow/agent/probe"
	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// measure runs every probe of the settings, one after the other, with the same options for
// baseline and every phase. No probes: no measurements.
func (d *Driver) measure(ctx context.Context, s *ebbflowv1.ProbeSettings) ([]*ebbflowv1.Measurement, error) {
	if len(s.GetProbes()) == 0 {
		return nil, nil
	}
	if err := probe.ValidateSettings(s); err != nil {
		return nil, err
	}
	opts := d.cfg.ProbeOptions(s)
	var out []*ebbflowv1.Measurement
	for i, spec := range s.GetProbes() {
		res, err := probe.Run(ctx, spec, opts)
		if err != nil {
			return nil, fmt.Errorf("probe %d (%s %s): %w", i, spec.GetKind(), spec.GetTarget(), err)
		}
		d.log.Info("measured", "kind", spec.GetKind().String(), "target", spec.GetTarget(),
			"p50_ms", res.P50Ms, "p99_ms", res.P99Ms, "count", res.Count, "errors", res.Errors)
		out = append(out, res.Proto())
	}
	return out, nil
}
