package server

import (
	"errors"

	"github.com/lockd/lockd/internal/peering"
	"github.com/lockd/lockd/internal/tlsfiles"
)

// ClusterTLSConfig turns on mutual TLS on the cluster port (Redis's
// tls-cluster): every peer connection, accepted or dialed, is TLS 1.3 with
// a certificate the CA signed on both sides, valid for the host of that
// member's address in the peers, and the cluster secret's handshake runs
// inside it (see internal/peering's tls.go). The files are reloaded as the
// TLS port's are (TLSConfig.ReloadInterval, Server.ReloadTLS): new peer
// connections use the new material, open ones go on.
type ClusterTLSConfig struct {
	// CertFile holds the node's certificate for its cluster address (PEM;
	// intermediate CA certificates after it), presented both to the peers
	// it dials and to those it accepts, so it needs the server and client
	// key usages (or none); KeyFile holds its key. CAFile holds the CA
	// certificates peers' certificates are verified against. All three are
	// required.
	CertFile string
	KeyFile  string
	CAFile   string
}

func (c *ClusterTLSConfig) validate() error {
	if c.CertFile == "" || c.KeyFile == "" || c.CAFile == "" {
		return errors.New("cluster tls: the cluster port needs a certificate file, a key file and a CA file")
	}
	return nil
}

// loadClusterTLS loads the cluster port's files and hands them to the node.
func (s *Server) loadClusterTLS(cfg *Config) error {
	c := cfg.ClusterTLS
	files, err := tlsfiles.Load(peering.ClusterTLS(c.CertFile, c.KeyFile, c.CAFile), s.log)
	if err != nil {
		return err
	}
	s.peerTLS = files
	cfg.Node.ClusterTLS = files
	return nil
}
