package controller

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ebbflow/ebbflow/store"
)

// NodeOptions assemble one controller node: its Raft store, its API server and the HTTP
// server that serves the API. fleet-controller and the tests' nodes (controllertest) both
// start nodes this way, so tests run the production wiring.
type NodeOptions struct {
	Store store.Config
	// Config is the API server's; StartNode sets its Store.
	Config Config
	// Configure, when set, adjusts Config once the store is open (an authenticator reads the
	// store's cluster identities).
	Configure func(st *store.Store, cfg *Config) error
	// Listener is the API's. With TLS the API is served over TLS (HTTP/1.1 and HTTP/2);
	// without, as plain HTTP/1.1 and h2c.
	Listener net.Listener
	TLS      *tls.Config
}

// Node is a running controller node.
type Node struct {
	Store  *store.Store
	Server *Server
	http   *http.Server
	cancel context.CancelFunc
	served chan error
}

// StartNode opens the store, builds the API server, starts its background work (Run) and
// serves the API on the listener.
func StartNode(o NodeOptions) (*Node, error) {
	st, err := store.Open(o.Store)
	if err != nil {
		return nil, err
	}
	cfg := o.Config
	cfg.Store = st
	if o.Configure != nil {
		if err := o.Configure(st, &cfg); err != nil {
			return nil, errors.Join(err, st.Close())
		}
	}
	srv, err := New(cfg)
	if err != nil {
		return nil, errors.Join(err, st.Close())
	}
	ctx, cancel := context.WithCancel(context.Background())
	go srv.Run(ctx)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(o.TLS == nil)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		Protocols:         &protocols,
		TLSConfig:         o.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		HTTP2:             HTTP2Config(),
	}
	n := &Node{Store: st, Server: srv, http: hs, cancel: cancel, served: make(chan error, 1)}
	go func() {
		if o.TLS != nil {
			n.served <- hs.ServeTLS(o.Listener, "", "")
			return
		}
		n.served <- hs.Serve(o.Listener)
	}()
	return n, nil
}

// Served reports the HTTP server's end: http.ErrServerClosed after Shutdown or Close, another
// error when serving failed.
func (n *Node) Served() <-chan error { return n.served }

// Shutdown stops the node gracefully: the API lets calls in flight finish (until ctx ends),
// then the background work and the store stop.
func (n *Node) Shutdown(ctx context.Context) error {
	err := n.http.Shutdown(ctx)
	n.cancel()
	return errors.Join(err, n.Store.Close())
}

// Close stops the node at once: open connections are closed, then the store.
func (n *Node) Close() error {
	err := n.http.Close()
	n.cancel()
	return errors.Join(err, n.Store.Close())
}
