package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// BenchmarkTLS measures what TLS costs on the client port, on one node
// without fsync (so the wire is a larger share of each command):
// LOCK/UNLOCK from parallel go-redis clients (64 connections, parallelism
// 4), and a new connection: dial, handshake for TLS (ECDSA P-256, TLS 1.3),
// PING, close; each over the plaintext port and over the TLS port.
func BenchmarkTLS(b *testing.B) {
	cert, key := tlsPair(b, 1)
	srv := startServer(b, func(c *Config) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		c.Node.NoFsync = true
		c.TLSListener = ln
		c.TLS = TLSConfig{CertFile: cert, KeyFile: key, AuthClients: TLSAuthClientsNo}
	})
	client := &tls.Config{InsecureSkipVerify: true} // the benchmark's own self-signed certificate
	for _, port := range []struct {
		name string
		opts func(*redis.Options)
	}{
		{"plaintext", func(o *redis.Options) {}},
		{"tls", func(o *redis.Options) { o.Addr, o.TLSConfig = srv.TLSAddr().String(), client }},
	} {
		b.Run("lock-unlock/"+port.name, func(b *testing.B) {
			rdb := newRedis(b, srv, port.opts, func(o *redis.Options) { o.PoolSize = 64 })
			ctx := context.Background()
			if err := rdb.Ping(ctx).Err(); err != nil {
				b.Fatal(err)
			}
			cyc := lockCycle()
			var workers atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				owner := fmt.Sprintf("%s-owner-%d", port.name, workers.Add(1))
				for i := 0; pb.Next(); i++ {
					if err := cyc(ctx, rdb, fmt.Sprintf("%s-lock-%d", owner, i%64), owner); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	for _, port := range []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"plaintext", func() (net.Conn, error) { return net.Dial("tcp", srv.Addr().String()) }},
		{"tls", func() (net.Conn, error) { return tls.Dial("tcp", srv.TLSAddr().String(), client) }},
	} {
		b.Run("new-connection/"+port.name, func(b *testing.B) {
			pong := make([]byte, 7)
			b.ReportAllocs()
			for b.Loop() {
				c, err := port.dial()
				if err != nil {
					b.Fatal(err)
				}
				io.WriteString(c, "PING\r\n")
				if _, err := io.ReadFull(c, pong); err != nil || string(pong) != "+PONG\r\n" {
					b.Fatalf("PING = %q, %v", pong, err)
				}
				c.Close()
			}
		})
	}
}
