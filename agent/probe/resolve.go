package probe

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// ResolvingDialer sends connections for chosen host:port addresses to fixed ones, like curl's
// --resolve: an agent outside its cluster can probe a target by its in-cluster name.
type ResolvingDialer struct {
	// Map is host:port -> host:port to dial instead.
	Map  map[string]string
	Base *net.Dialer
}

// DialContext dials address, or what Map says to dial instead.
func (d ResolvingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if to, ok := d.Map[address]; ok {
		address = to
	}
	base := d.Base
	if base == nil {
		base = &net.Dialer{KeepAlive: -1}
	}
	return base.DialContext(ctx, network, address)
}

// ParseResolve reads "host:port=host:port" entries.
func ParseResolve(entries []string) (map[string]string, error) {
	out := map[string]string{}
	for _, e := range entries {
		from, to, ok := strings.Cut(strings.TrimSpace(e), "=")
		if !ok {
			return nil, fmt.Errorf("resolve %q: want host:port=host:port", e)
		}
		for _, a := range []string{from, to} {
			if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
				return nil, fmt.Errorf("resolve %q: %q is not host:port", e, a)
			}
		}
		out[from] = to
	}
	return out, nil
}
