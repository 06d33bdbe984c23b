// Package charts tests the Helm charts beside it (ebbflow-controller, ebbflow-agent) with the
// Helm SDK: lint and Chart.yaml metadata, golden renderings (objects, helm test hooks, NOTES),
// the values schemas, name overrides, both charts as subcharts of a parent chart, the test
// hooks' and NOTES' commands run against a real controller, the controller's Raft wiring, and
// the agent's least-privilege RBAC driving real phases on a kubebox API server.
package charts
