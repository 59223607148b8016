package integration

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// fromAddr is a go-redis client of node i whose connections come from the
// local address ip: 127.0.0.2 stands for another host, as it does for
// Redis's protected mode.
func fromAddr(t testing.TB, c *cluster, i int, ip, password string) *redis.Client {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: time.Second}
	rdb := redis.NewClient(&redis.Options{
		Addr: c.nodes[i].client, Password: password, MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// Protected mode, as Redis's: a node without a password serves only
// clients that connect from 127.0.0.1 or ::1.
func TestProtectedMode(t *testing.T) {
	ctx := context.Background()
	t.Run("a node without a password tells a client from elsewhere DENIED and serves a local one", func(t *testing.T) {
		c := startNode(t)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Second}
		conn, err := d.Dial("tcp", c.nodes[1].client)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(encodeRESP("PING"))); err != nil {
			t.Fatal(err)
		}
		reply, err := io.ReadAll(conn) // the refusal, then the node closes
		if err != nil || !strings.HasPrefix(string(reply), "-DENIED lockd is running in protected mode") {
			t.Fatalf("PING from 127.0.0.2: %q, %v; want -DENIED and the end of the connection", reply, err)
		}
		if err := c.client(1).Ping(ctx).Err(); err != nil {
			t.Fatalf("PING from 127.0.0.1: %v", err)
		}
	})
	t.Run("--protected-mode no serves a client from elsewhere", func(t *testing.T) {
		c := startNode(t, "--protected-mode", "no")
		if err := fromAddr(t, c, 1, "127.0.0.2", "").Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatalf("SET from 127.0.0.2: %v", err)
		}
	})
	t.Run("with --requirepass a client from elsewhere authenticates like anyone", func(t *testing.T) {
		c := startCluster(t, 1, clusterOpts{password: "s3cret-pass"})
		if err := fromAddr(t, c, 1, "127.0.0.2", "").Ping(ctx).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOAUTH") {
			t.Fatalf("PING from 127.0.0.2 without AUTH: %v; want NOAUTH", err)
		}
		if err := fromAddr(t, c, 1, "127.0.0.2", "s3cret-pass").Ping(ctx).Err(); err != nil {
			t.Fatalf("PING from 127.0.0.2 with AUTH: %v", err)
		}
	})
}
