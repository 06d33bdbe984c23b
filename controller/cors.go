package controller

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	connectcors "connectrpc.com/cors"
	"github.com/rs/cors"
)

// corsMaxAge is how long a browser may cache a preflight answer, in seconds.
const corsMaxAge = 7200

// CheckCORSOrigins refuses origins a browser would never send: each must be scheme://host[:port]
// with http or https and nothing else. A wildcard is refused too: the API takes bearer tokens,
// and an operator names the portals that may call it.
func CheckCORSOrigins(origins []string) error {
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || strings.Contains(o, "*") || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return fmt.Errorf("--cors-origin %q: want an origin such as https://portal.example.com (scheme, host and optional port; no path, no wildcard)", o)
		}
	}
	return nil
}

// withCORS answers browsers' cross-origin requests and preflights (OPTIONS) for origins, with
// the methods and headers the Connect, gRPC-Web and gRPC protocols use plus Authorization; h
// serves everything else unchanged. Without origins it returns h.
func withCORS(h http.Handler, origins []string) http.Handler {
	if len(origins) == 0 {
		return h
	}
	return cors.New(cors.Options{
		AllowedOrigins: slices.Clone(origins),
		AllowedMethods: connectcors.AllowedMethods(),
		AllowedHeaders: append(connectcors.AllowedHeaders(), "Authorization"),
		ExposedHeaders: connectcors.ExposedHeaders(),
		MaxAge:         corsMaxAge,
	}).Handler(h)
}
