// Package tlsfiles holds a TLS certificate, its key and a CA as last loaded
// from their files, reloaded when the files change: the client port's
// (server) and the cluster port's (internal/peering) material.
package tlsfiles

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// MaxFileSize bounds what is read of each certificate, key or CA file.
const MaxFileSize = 1 << 20

// Config names the files and how handshakes use them.
type Config struct {
	// Name is what the files serve, the prefix of errors and log lines
	// ("tls" for the client port, "cluster tls").
	Name string
	// CertFile holds the certificate (PEM; intermediate CA certificates
	// after it) and KeyFile its private key (PEM). Both are required.
	CertFile string
	KeyFile  string
	// CAFile holds the CA certificates (PEM) the other side's certificate
	// is verified against; optional.
	CAFile string
	// ClientAuth is what ServerConfig asks of clients.
	ClientAuth tls.ClientAuthType
	// MinVersion is the oldest TLS version accepted (default TLS 1.2).
	MinVersion uint16
}

// Files is a certificate, key and CA as last loaded from their files, and
// the handshake configuration made of them. A load that fails (a file
// missing, unreadable, larger than MaxFileSize, not PEM, a key that does not
// match the certificate) changes nothing: handshakes keep using what was
// loaded before.
//
// Concurrency: ServerConfig's configuration and ClientConfig are used by
// handshakes on any goroutine, and read the configuration through an atomic
// pointer; Reload may be called from any goroutine and is serialized by mu;
// Poll runs on a goroutine of its own until its stop channel is closed.
type Files struct {
	cfg Config
	log *slog.Logger

	current atomic.Pointer[tls.Config]

	mu   sync.Mutex
	seen [sha256.Size]byte // what Reload last read: the files' contents, or their read errors
}

// Load loads cfg's files, or tells why they cannot serve.
func Load(cfg Config, log *slog.Logger) (*Files, error) {
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	f := &Files{cfg: cfg, log: log}
	if _, err := f.Reload(true); err != nil {
		return nil, err
	}
	return f, nil
}

// ServerConfig is the configuration for tls.Server: each handshake takes the
// configuration loaded last, so a reload applies to new connections while
// open ones go on with what they negotiated.
func (f *Files) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: f.cfg.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.current.Load(), nil
		},
	}
}

// ClientConfig is a configuration for tls.Client, made of what was loaded
// last: it verifies the server's certificate against the CA and for
// serverName (a host name or an IP address), and presents the certificate
// whatever CAs the server says it accepts (so that a server of another CA
// can say why it refuses it).
func (f *Files) ClientConfig(serverName string) *tls.Config {
	cur := f.current.Load()
	cert := &cur.Certificates[0]
	return &tls.Config{
		MinVersion: f.cfg.MinVersion,
		RootCAs:    cur.RootCAs,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return cert, nil
		},
	}
}

// Reload reads the files and, when their contents differ from what the last
// reload read (or force is set), makes a new configuration of them. It
// reports whether handshakes now use new material; on an error they keep
// the old.
func (f *Files) Reload(force bool) (changed bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := sha256.New()
	read := func(path string) ([]byte, error) {
		b, err := readBounded(path)
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", path, err)
			return nil, err
		}
		fmt.Fprintf(h, "%s: %d %s\n", path, len(b), b)
		return b, nil
	}
	cert, certErr := read(f.cfg.CertFile)
	key, keyErr := read(f.cfg.KeyFile)
	var ca []byte
	var caErr error
	if f.cfg.CAFile != "" {
		ca, caErr = read(f.cfg.CAFile)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if sum == f.seen && !force {
		return false, nil
	}
	f.seen = sum
	if err := errors.Join(certErr, keyErr, caErr); err != nil {
		return false, fmt.Errorf("%s: %w", f.cfg.Name, err)
	}
	c, err := f.build(cert, key, ca)
	if err != nil {
		return false, err
	}
	f.current.Store(c)
	return true, nil
}

// build makes a handshake configuration of the files' contents.
func (f *Files) build(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: certificate %s and key %s: %w", f.cfg.Name, f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	if now := time.Now(); now.After(pair.Leaf.NotAfter) || now.Before(pair.Leaf.NotBefore) {
		// Served anyway, as Redis does: the other side will refuse it, and
		// say why.
		f.log.Warn(f.cfg.Name+": the certificate is not valid now", "file", f.cfg.CertFile,
			"not_before", pair.Leaf.NotBefore, "not_after", pair.Leaf.NotAfter)
	}
	c := &tls.Config{
		MinVersion:   f.cfg.MinVersion,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   f.cfg.ClientAuth,
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%s: CA file %s holds no PEM certificate", f.cfg.Name, f.cfg.CAFile)
		}
		c.ClientCAs, c.RootCAs = pool, pool
	}
	return c, nil
}

// readBounded reads a file of at most MaxFileSize bytes.
func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	return b, nil
}

// Poll reloads the files every interval until stop is closed, logging each
// change and each failure (once per content of the files: a bad file is
// reported when it appears, not at every look).
func (f *Files) Poll(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		switch changed, err := f.Reload(false); {
		case err != nil:
			f.log.Error(f.cfg.Name+": files changed but not loaded; new handshakes keep the old certificate", "err", err)
		case changed:
			f.log.Info(f.cfg.Name+": files changed; new handshakes use them", "cert", f.cfg.CertFile, "not_after", f.Leaf().NotAfter)
		}
	}
}

// Leaf is the certificate handshakes present now.
func (f *Files) Leaf() *x509.Certificate {
	return f.current.Load().Certificates[0].Leaf
}
