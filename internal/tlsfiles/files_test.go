package tlsfiles

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Reload loads files whose contents changed, keeps what it had when they
// cannot be loaded, and reports a bad content once, not at every look.
func TestReload(t *testing.T) {
	cert, key := tlsPair(t, 1)
	f, err := Load(Config{Name: "tls", CertFile: cert, KeyFile: key}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	next, nextKey := tlsPair(t, 2)
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, step := range []struct {
		name        string
		cert, key   []byte // written when not nil
		wantChanged bool
		wantErr     bool
		wantSerial  int64
	}{
		{"unchanged", nil, nil, false, false, 1},
		{"certificate-not-PEM", []byte("garbage"), nil, false, true, 1},
		{"the-same-garbage-again", nil, nil, false, false, 1},
		{"certificate-of-another-key", read(next), nil, false, true, 1},
		{"its-key", nil, read(nextKey), true, false, 2},
		{"unchanged-after", nil, nil, false, false, 2},
	} {
		if step.cert != nil {
			writeFile(t, cert, step.cert)
		}
		if step.key != nil {
			writeFile(t, key, step.key)
		}
		changed, err := f.Reload(false)
		if changed != step.wantChanged || (err != nil) != step.wantErr || f.Leaf().SerialNumber.Int64() != step.wantSerial {
			t.Fatalf("%s: reload = %v, %v, serving serial %d; want %v, error %v, serial %d",
				step.name, changed, err, f.Leaf().SerialNumber, step.wantChanged, step.wantErr, step.wantSerial)
		}
	}
}

// tlsPair writes a self-signed ECDSA P-256 certificate for 127.0.0.1 with
// serial number serial, and its key, to files in a test directory.
func tlsPair(t testing.TB, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "lockd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	return certFile, keyFile
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
