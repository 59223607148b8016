package integration

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// With --tls-auth-clients-user CN (Redis 8.6's tls-auth-clients-user), a
// connection whose client certificate the CA verified is the ACL user its
// common name names, without AUTH, when that user exists and is on; with
// any other certificate, none, or the flag off, it starts as any other
// connection (here: not authenticated, the node has a password). The user's
// key patterns apply, and deleting the user closes its connections.
func TestTLSClientCertificateNamesTheUser(t *testing.T) {
	ca := newCA(t, "lockd test CA")
	on := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--requirepass", "secret", "--tls-auth-clients", "optional", "--tls-auth-clients-user", "CN"}})
	off := startTLSNode(t, ca, tlsNodeOpts{extra: []string{"--requirepass", "secret"}})
	ctx := context.Background()
	for _, n := range []*tlsNode{on, off} {
		admin := n.goRedis(t, trusting(ca, &n.client), func(o *redis.Options) { o.Password = "secret" })
		for _, rule := range [][]any{
			{"ACL", "SETUSER", "orders", "on", ">orders-pw", "~orders:*", "+@all"},
			{"ACL", "SETUSER", "frozen", "off", ">frozen-pw", "~*", "+@all"},
		} {
			// A connection made before a new node has caught up is closed
			// when it has (the users it was checked against may be old):
			// retry on a new one.
			poll(t, 10*time.Second, "ACL SETUSER to succeed", func() bool {
				return admin.Do(ctx, rule...).Err() == nil
			})
		}
	}
	orders := ca.issue(t, certSpec{cn: "orders", client: true})
	frozen := ca.issue(t, certSpec{cn: "frozen", client: true})
	nobody := ca.issue(t, certSpec{cn: "nobody", client: true})

	for _, tc := range []struct {
		name string
		node *tlsNode
		cert *leaf
		want string // ACL WHOAMI's reply
	}{
		{"a-user-that-is-on", on, &orders, "orders"},
		{"no-such-user", on, &nobody, "-NOAUTH Authentication required."},
		{"a-user-that-is-off", on, &frozen, "-NOAUTH Authentication required."},
		{"no-certificate", on, nil, "-NOAUTH Authentication required."},
		{"flag-off", off, &orders, "-NOAUTH Authentication required."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.node.rawCommand(trusting(ca, tc.cert), "ACL", "WHOAMI")
			if err != nil || got != tc.want {
				t.Fatalf("ACL WHOAMI: %q, %v; want %q", got, err, tc.want)
			}
		})
	}

	rdb := on.goRedis(t, trusting(ca, &orders))
	if tok, err := lockCmd(ctx, rdb, "orders:1", "svc"); err != nil || tok <= 0 {
		t.Fatalf("LOCK orders:1 as orders: %d, %v", tok, err)
	}
	if _, err := lockCmd(ctx, rdb, "billing:1", "svc"); err == nil || !strings.HasPrefix(err.Error(), "NOPERM") {
		t.Fatalf("LOCK billing:1 as orders: %v; want NOPERM", err)
	}
	conn := on.dialTLS(t, trusting(ca, &orders))
	admin := on.goRedis(t, trusting(ca, &on.client), func(o *redis.Options) { o.Password = "secret" })
	if err := admin.Do(ctx, "ACL", "DELUSER", "orders").Err(); err != nil {
		t.Fatal(err)
	}
	// The node closes the deleted user's connections when it applies the
	// deletion: the open one reads its end.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 64)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the deleted user's connection is still open (read %d bytes, %v)", n, err)
	}
	poll(t, 10*time.Second, "a new connection with the deleted user's certificate to be unauthenticated", func() bool {
		got, err := on.rawCommand(trusting(ca, &orders), "ACL", "WHOAMI")
		return err == nil && got == "-NOAUTH Authentication required."
	})
}
