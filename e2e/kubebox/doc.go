// Package kubebox builds and runs real local Kubernetes clusters (etcd, kube-apiserver,
// controller-manager, scheduler, kwok) from the Go module proxy, for tests and the demo.
//
// Nothing is downloaded but Go modules: [EnsureBinaries] builds etcd, the three Kubernetes
// control-plane binaries and kwok from the small modules under build/ (each its own Go module, so
// the product never depends on k8s.io/kubernetes) and caches them by version. The first build
// takes about ten minutes on two cores; later calls find the cache and cost nothing.
//
// [Start] runs one cluster as child processes bound to 127.0.0.1 on free ports: certificates are
// generated in Go, the API server authenticates a bearer token and enforces RBAC, the
// controller-manager and scheduler run their default controllers, and kwok plays the kubelet of
// every node, so Node objects become Ready and DaemonSet pods are scheduled and become Running.
// Pods do not really run: tests measure against real local targets instead.
//
// Tests use [ForTest], which never skips: when the binaries are missing it builds them.
package kubebox
