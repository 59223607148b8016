package server

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

// maxTLSFileSize bounds what is read of each certificate, key or CA file.
const maxTLSFileSize = 1 << 20

// tlsFiles is the TLS port's certificate, key and CA as last loaded from
// their files, and the handshake configuration made of them. A load that
// fails (a file missing, unreadable, too large, not PEM, a key that does not
// match the certificate) changes nothing: handshakes keep using what was
// loaded before.
//
// Concurrency: config is called by every handshake, from any goroutine, and
// reads the configuration through an atomic pointer; reload may be called
// from any goroutine and is serialized by mu; poll runs on a goroutine of
// its own until its stop channel is closed.
type tlsFiles struct {
	cfg TLSConfig
	log *slog.Logger

	current atomic.Pointer[tls.Config]

	mu   sync.Mutex
	seen [sha256.Size]byte // what reload last read: the files' contents, or their read errors
}

// loadTLSFiles loads cfg's files, or tells why they cannot serve.
func loadTLSFiles(cfg TLSConfig, log *slog.Logger) (*tlsFiles, error) {
	f := &tlsFiles{cfg: cfg, log: log}
	if _, err := f.reload(true); err != nil {
		return nil, err
	}
	return f, nil
}

// serverConfig is the configuration the TLS listener hands to tls.Server:
// each handshake takes the configuration loaded last, so a reload applies
// to new connections while open ones go on with what they negotiated.
func (f *tlsFiles) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return f.current.Load(), nil
		},
	}
}

// reload reads the files and, when their contents differ from what the last
// reload read (or force is set), makes a new configuration of them. It
// reports whether handshakes now use new material; on an error they keep
// the old.
func (f *tlsFiles) reload(force bool) (changed bool, err error) {
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
		return false, fmt.Errorf("tls: %w", err)
	}
	c, err := f.build(cert, key, ca)
	if err != nil {
		return false, err
	}
	f.current.Store(c)
	return true, nil
}

// build makes a handshake configuration of the files' contents.
func (f *tlsFiles) build(certPEM, keyPEM, caPEM []byte) (*tls.Config, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s and key %s: %w", f.cfg.CertFile, f.cfg.KeyFile, err)
	}
	if now := time.Now(); now.After(pair.Leaf.NotAfter) || now.Before(pair.Leaf.NotBefore) {
		// Served anyway, as Redis does: clients will refuse it, and say why.
		f.log.Warn("tls: the certificate is not valid now", "file", f.cfg.CertFile,
			"not_before", pair.Leaf.NotBefore, "not_after", pair.Leaf.NotAfter)
	}
	c := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.NoClientCert,
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", f.cfg.CAFile)
		}
		c.ClientCAs = pool
	}
	switch f.cfg.AuthClients {
	case TLSAuthClientsYes:
		c.ClientAuth = tls.RequireAndVerifyClientCert
	case TLSAuthClientsOptional:
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// readBounded reads a file of at most maxTLSFileSize bytes.
func readBounded(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxTLSFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTLSFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxTLSFileSize)
	}
	return b, nil
}

// poll reloads the files every interval until stop is closed, logging each
// change and each failure (once per content of the files: a bad file is
// reported when it appears, not at every look).
func (f *tlsFiles) poll(interval time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		switch changed, err := f.reload(false); {
		case err != nil:
			f.log.Error("tls: files changed but not loaded; new handshakes keep the old certificate", "err", err)
		case changed:
			f.log.Info("tls: files changed; new handshakes use them", "cert", f.cfg.CertFile, "not_after", f.leaf().NotAfter)
		}
	}
}

// leaf is the certificate handshakes present now.
func (f *tlsFiles) leaf() *x509.Certificate {
	return f.current.Load().Certificates[0].Leaf
}
