package server

import (
	"net"
	"os"
	"strings"
	"testing"
)

// Cluster TLS that cannot serve is refused by New, which starts nothing;
// files that load start the node.
func TestClusterTLSConfig(t *testing.T) {
	cert, key := tlsPair(t, 1)
	for _, tc := range []struct {
		name string
		tls  ClusterTLSConfig
		ok   bool
	}{
		{"no-CA", ClusterTLSConfig{CertFile: cert, KeyFile: key}, false},
		{"no-key", ClusterTLSConfig{CertFile: cert, CAFile: cert}, false},
		{"missing-file", ClusterTLSConfig{CertFile: cert + ".missing", KeyFile: key, CAFile: cert}, false},
		{"CA-file-not-PEM", ClusterTLSConfig{CertFile: cert, KeyFile: key, CAFile: key}, false},
		{"good", ClusterTLSConfig{CertFile: cert, KeyFile: key, CAFile: cert}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			srv, err := New(Config{Listener: ln, ClusterTLS: &tc.tls, Node: nodeConfig(t)})
			if err == nil {
				srv.Close()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("New with %+v: %v; want it to start: %v", tc.tls, err, tc.ok)
			}
		})
	}
}

// ReloadTLS (SIGHUP) loads the cluster port's files too, and a bad one
// keeps the old certificate and says why.
func TestReloadTLSLoadsTheClusterPort(t *testing.T) {
	cert, key := tlsPair(t, 1)
	srv := startServer(t, func(c *Config) {
		c.ClusterTLS = &ClusterTLSConfig{CertFile: cert, KeyFile: key, CAFile: cert}
	})
	next, nextKey := tlsPair(t, 2)
	if err := os.Rename(nextKey, key); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "cluster tls") {
		t.Fatalf("ReloadTLS with the key of another certificate = %v; want a cluster tls error", err)
	}
	if s := srv.peerTLS.Leaf().SerialNumber.Int64(); s != 1 {
		t.Fatalf("after a failed reload the cluster port presents serial %d; want the old 1", s)
	}
	if err := os.Rename(next, cert); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if s := srv.peerTLS.Leaf().SerialNumber.Int64(); s != 2 {
		t.Fatalf("after ReloadTLS the cluster port presents serial %d; want 2", s)
	}
}
