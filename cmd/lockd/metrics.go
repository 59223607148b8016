package main

import (
	"log/slog"
	"net"

	"github.com/lockd/lockd/metrics"
	"github.com/lockd/lockd/server"
)

// nodeMetrics is the node's metrics when --metrics-listen is given; its
// methods do nothing on a nil one.
type nodeMetrics struct{ m *metrics.Metrics }

// newMetrics returns the node's metrics, nil without --metrics-listen.
func (o *options) newMetrics() *nodeMetrics {
	if o.metricsListen == "" {
		return nil
	}
	return &nodeMetrics{metrics.New()}
}

// observe returns cfg with the metrics' hooks set.
func (nm *nodeMetrics) observe(cfg server.Config) server.Config {
	if nm != nil {
		cfg.Observer = nm.m.Commands()
		cfg.Node.Observer = nm.m
	}
	return cfg
}

// serve watches srv and serves the metrics port on addr until Close.
func (nm *nodeMetrics) serve(addr string, srv *server.Server, log *slog.Logger) (*metrics.HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	nm.m.Watch(srv)
	hs := metrics.Serve(ln, nm.m, srv.Node(), log)
	log.Info("serving metrics", "addr", hs.Addr().String())
	return hs, nil
}
