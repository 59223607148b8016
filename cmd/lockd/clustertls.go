package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/lockd/lockd/server"
)

// clusterTLSFlags defines the cluster port's TLS flags. Redis's names where
// they fit: --tls-cluster is Redis's tls-cluster; the certificate and key
// default to the client port's (--tls-cert-file, --tls-key-file), as
// Redis's cluster bus uses tls-cert-file, and peers' certificates are
// verified against --tls-ca-cert-file. Redis's tls-client-cert-file (a
// second certificate for the connections a node opens) has no counterpart:
// a lockd node presents the same certificate to the peers it dials and to
// those it accepts.
func (o *options) clusterTLSFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.tlsCluster, "tls-cluster", "no", "yes: mutual TLS between peers on the cluster port, each certificate verified against --tls-ca-cert-file and for the host of that member's --peers address (the cluster secret's handshake still runs inside); no: plain TCP")
	fs.StringVar(&o.tlsClusterCertFile, "tls-cluster-cert-file", "", "the cluster port's certificate (PEM), presented to peers both ways, so with the serverAuth and clientAuth key usages (default: --tls-cert-file); reloaded like it")
	fs.StringVar(&o.tlsClusterKeyFile, "tls-cluster-key-file", "", "the private key of --tls-cluster-cert-file (default: --tls-key-file)")
}

// checkClusterTLS refuses cluster TLS flags that cannot serve. Whether the
// files can be read and hold a certificate and its key is checked when the
// node starts.
func (o *options) checkClusterTLS() error {
	switch o.tlsCluster {
	case "no":
		if o.tlsClusterCertFile != "" || o.tlsClusterKeyFile != "" {
			return errors.New("--tls-cluster-cert-file and --tls-cluster-key-file serve TLS on the cluster port: give --tls-cluster yes")
		}
		return nil
	case "yes":
	default:
		return fmt.Errorf("--tls-cluster %q: want yes or no", o.tlsCluster)
	}
	cert, key := o.clusterCertFiles()
	switch {
	case (o.tlsClusterCertFile == "") != (o.tlsClusterKeyFile == ""):
		return errors.New("give --tls-cluster-cert-file and --tls-cluster-key-file together")
	case cert == "" || key == "":
		return errors.New("--tls-cluster yes needs a certificate: --tls-cert-file and --tls-key-file, or --tls-cluster-cert-file and --tls-cluster-key-file")
	case o.tlsCAFile == "":
		return errors.New("--tls-cluster yes verifies peers' certificates: give --tls-ca-cert-file")
	case o.tlsReloadInterval <= 0:
		return errors.New("--tls-reload-interval must be positive")
	}
	return nil
}

// clusterCertFiles are the cluster port's certificate and key files.
func (o *options) clusterCertFiles() (cert, key string) {
	if o.tlsClusterCertFile != "" {
		return o.tlsClusterCertFile, o.tlsClusterKeyFile
	}
	return o.tlsCertFile, o.tlsKeyFile
}

// clusterTLS is the server's configuration of the cluster port's TLS, nil
// without it.
func (o *options) clusterTLS() *server.ClusterTLSConfig {
	if o.tlsCluster != "yes" {
		return nil
	}
	cert, key := o.clusterCertFiles()
	return &server.ClusterTLSConfig{CertFile: cert, KeyFile: key, CAFile: o.tlsCAFile}
}
