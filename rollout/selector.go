package rollout

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// ParseSelector parses a Kubernetes label selector such as "env=prod,region in (eu,us),!legacy".
// The empty string selects every cluster. The error names the selector.
func ParseSelector(s string) (labels.Selector, error) {
	sel, err := labels.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", s, err)
	}
	return sel, nil
}

// selects reports whether sel matches the cluster's labels.
func selects(sel labels.Selector, c *ebbflowv1.Cluster) bool {
	return sel.Matches(labels.Set(c.GetLabels()))
}
