package main

import (
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/lockd/lockd/server"
)

// --tls-cluster yes takes the client port's certificate and key unless the
// cluster port's are given, and needs a CA; flags that cannot serve are
// refused with a message that names them.
func TestClusterTLSFlags(t *testing.T) {
	files := []string{"--tls-cert-file", "c.pem", "--tls-key-file", "k.pem", "--tls-ca-cert-file", "ca.pem"}
	for _, tc := range []struct {
		name string
		args []string
		err  string                   // "" when accepted
		want *server.ClusterTLSConfig // when accepted
	}{
		{"off-by-default", nil, "", nil},
		{"the-client-port's-files", append([]string{"--tls-cluster", "yes"}, files...), "",
			&server.ClusterTLSConfig{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}},
		{"its-own-files", append([]string{"--tls-cluster", "yes", "--tls-cluster-cert-file", "cc.pem", "--tls-cluster-key-file", "ck.pem"}, files...), "",
			&server.ClusterTLSConfig{CertFile: "cc.pem", KeyFile: "ck.pem", CAFile: "ca.pem"}},
		{"its-own-files-only", []string{"--tls-cluster", "yes", "--tls-cluster-cert-file", "cc.pem", "--tls-cluster-key-file", "ck.pem", "--tls-ca-cert-file", "ca.pem"}, "",
			&server.ClusterTLSConfig{CertFile: "cc.pem", KeyFile: "ck.pem", CAFile: "ca.pem"}},
		{"beside-the-TLS-port", append([]string{"--tls-cluster", "yes", "--tls-port", "127.0.0.1:6380"}, files...), "",
			&server.ClusterTLSConfig{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}},
		{"not-yes-or-no", []string{"--tls-cluster", "on"}, `--tls-cluster "on": want yes or no`, nil},
		{"no-certificate", []string{"--tls-cluster", "yes", "--tls-ca-cert-file", "ca.pem"}, "--tls-cluster yes needs a certificate", nil},
		{"no-CA", []string{"--tls-cluster", "yes", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}, "--tls-cluster yes verifies peers' certificates: give --tls-ca-cert-file", nil},
		{"cluster-certificate-without-key", append([]string{"--tls-cluster", "yes", "--tls-cluster-cert-file", "cc.pem"}, files...), "give --tls-cluster-cert-file and --tls-cluster-key-file together", nil},
		{"cluster-files-without-tls-cluster", []string{"--tls-cluster-cert-file", "cc.pem", "--tls-cluster-key-file", "ck.pem"}, "give --tls-cluster yes", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseFlags(%q): %v; want an error with %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			}
			got := o.config(nil, nil, nil, map[uint64]string{o.id: o.clusterListen}, slog.New(slog.DiscardHandler)).ClusterTLS
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseFlags(%q): ClusterTLS %+v; want %+v", tc.args, got, tc.want)
			}
		})
	}
}
