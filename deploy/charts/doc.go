// Package charts tests the Helm charts beside it (ebbflow-controller, ebbflow-agent) with the
// Helm SDK: lint, golden renderings, the values schemas, the controller's Raft wiring, and the
// agent's least-privilege RBAC driving real phases on a kubebox API server.
package charts
