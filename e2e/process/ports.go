package process

import (
	"fmt"
	"net"
)

// FreePorts reserves n free TCP ports on 127.0.0.1 and releases them for the caller to bind
// (nodes keep their ports across restarts, as their Raft peers address them by them).
func FreePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		lns = append(lns, l)
		tcp, ok := l.Addr().(*net.TCPAddr)
		if !ok {
			return nil, fmt.Errorf("%s is not a TCP address", l.Addr())
		}
		ports = append(ports, tcp.Port)
	}
	return ports, nil
}
