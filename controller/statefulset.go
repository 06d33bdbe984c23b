package controller

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// PodPlan is how one pod of a StatefulSet takes part in the Raft group.
type PodPlan struct {
	// NodeID is the pod's name, <statefulset>-<ordinal>: stable across restarts.
	NodeID string
	// Bootstrap is set on ordinal 0, which starts the group when it has no Raft state yet.
	Bootstrap bool
	// Join is ordinal 0's API URL, which every other ordinal joins ("" on ordinal 0).
	Join string
	// Advertise and RaftAdvertise are the pod's stable DNS name with the API and Raft ports.
	Advertise, RaftAdvertise string
}

// StatefulSetPlan derives a pod's Raft identity from its name and the DNS name of the
// StatefulSet's headless Service, so a StatefulSet needs no script to bootstrap and join:
//
//	pod ctl-0, service ctl-peers.ebbflow.svc.cluster.local, --listen :7070, --raft-listen :7071
//	  -> id ctl-0, bootstrap, advertise ctl-0.ctl-peers.ebbflow.svc.cluster.local:7070 (raft :7071)
//	pod ctl-2, same service
//	  -> id ctl-2, join http://ctl-0.ctl-peers.ebbflow.svc.cluster.local:7070
//
// Bootstrap is harmless on a restart: the store ignores it once Raft state exists. A
// joining pod asks again on every start; adding a voter already there at that address is a
// no-op.
func StatefulSetPlan(podName, service, listen, raftListen, scheme string) (PodPlan, error) {
	i := strings.LastIndexByte(podName, '-')
	if i <= 0 || i == len(podName)-1 {
		return PodPlan{}, fmt.Errorf("pod name %q is not <statefulset>-<ordinal>", podName)
	}
	ordinal, err := strconv.ParseUint(podName[i+1:], 10, 31)
	if err != nil || strconv.FormatUint(ordinal, 10) != podName[i+1:] {
		return PodPlan{}, fmt.Errorf("pod name %q does not end in an ordinal", podName)
	}
	service = strings.TrimSuffix(service, ".")
	if service == "" || strings.ContainsAny(service, ":/ ") {
		return PodPlan{}, fmt.Errorf("headless service %q is not a DNS name", service)
	}
	if scheme != "http" && scheme != "https" {
		return PodPlan{}, fmt.Errorf("scheme %q is not http or https", scheme)
	}
	apiPort, err := portOf(listen)
	if err != nil {
		return PodPlan{}, fmt.Errorf("--listen: %w", err)
	}
	raftPort, err := portOf(raftListen)
	if err != nil {
		return PodPlan{}, fmt.Errorf("--raft-listen: %w", err)
	}
	host := podName + "." + service
	p := PodPlan{
		NodeID:        podName,
		Bootstrap:     ordinal == 0,
		Advertise:     net.JoinHostPort(host, apiPort),
		RaftAdvertise: net.JoinHostPort(host, raftPort),
	}
	if ordinal != 0 {
		first := podName[:i] + "-0." + service
		p.Join = scheme + "://" + net.JoinHostPort(first, apiPort)
	}
	return p, nil
}

// portOf is the port of a host:port listen address; it must be fixed (not 0), since peers
// dial it at the pod's DNS name.
func portOf(addr string) (string, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", errors.New("a StatefulSet pod needs a fixed port, got " + strconv.Quote(port))
	}
	return port, nil
}
