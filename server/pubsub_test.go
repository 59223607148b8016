package server

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// message is the exact RESP2 bytes of a message on channel.
func message(channel, payload string) string {
	return "*3\r\n" + bulk("message") + bulk(channel) + bulk(payload)
}

func confirm(kind, name string, n int64) string {
	return "*3\r\n" + bulk(kind) + bulk(name) + integer(n)
}

func TestPublishReachesSubscribers(t *testing.T) {
	srv := startServer(t)
	sub, pub := dial(t, srv), dial(t, srv)

	sub.send(encode("SUBSCRIBE", "orders", "audit"))
	if got, want := sub.reply()+sub.reply(), confirm("subscribe", "orders", 1)+confirm("subscribe", "audit", 2); got != want {
		t.Fatalf("SUBSCRIBE: got %q, want %q", got, want)
	}
	if n := pub.int("PUBLISH", "orders", "o-1"); n != 1 {
		t.Fatalf("PUBLISH answered %d receivers, want 1", n)
	}
	if n := pub.int("PUBLISH", "nobody", "x"); n != 0 {
		t.Fatalf("PUBLISH to a channel without subscribers answered %d, want 0", n)
	}
	pub.int("PUBLISH", "audit", "a-1")
	if got, want := sub.reply()+sub.reply(), message("orders", "o-1")+message("audit", "a-1"); got != want {
		t.Fatalf("messages: got %q, want %q", got, want)
	}
}

func TestPatternSubscriptions(t *testing.T) {
	srv := startServer(t)
	sub, pub := dial(t, srv), dial(t, srv)
	sub.expect(confirm("psubscribe", "orders:*", 1), "PSUBSCRIBE", "orders:*")
	if n := pub.int("PUBLISH", "orders:7", "paid"); n != 1 {
		t.Fatalf("PUBLISH answered %d, want 1", n)
	}
	pub.int("PUBLISH", "invoices:7", "ignored")
	pub.int("PUBLISH", "orders:8", "shipped")
	want := "*4\r\n" + bulk("pmessage") + bulk("orders:*") + bulk("orders:7") + bulk("paid") +
		"*4\r\n" + bulk("pmessage") + bulk("orders:*") + bulk("orders:8") + bulk("shipped")
	if got := sub.reply() + sub.reply(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := pub.value("PUBSUB", "NUMPAT"); got != int64(1) {
		t.Fatalf("PUBSUB NUMPAT = %v, want 1", got)
	}
}

func TestSubscribedRESP2ClientMayOnlyManageSubscriptions(t *testing.T) {
	srv := startServer(t)
	sub := dial(t, srv)
	sub.expect(confirm("subscribe", "c", 1), "SUBSCRIBE", "c")
	sub.expect("-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n", "GET", "k")
	sub.expect("*2\r\n"+bulk("pong")+bulk(""), "PING")
	sub.expect("*2\r\n"+bulk("pong")+bulk("hi"), "PING", "hi")
	// Leaving the last subscription returns the client to normal mode.
	sub.expect(confirm("unsubscribe", "c", 0), "UNSUBSCRIBE")
	sub.expect("$-1\r\n", "GET", "k")
	sub.expect("+PONG\r\n", "PING")
	sub.expect("*3\r\n"+bulk("unsubscribe")+"$-1\r\n"+integer(0), "UNSUBSCRIBE")
}

func TestRESP3SubscriberGetsPushesAndRunsCommands(t *testing.T) {
	srv := startServer(t)
	sub, pub := dial(t, srv), dial(t, srv)
	sub.value("HELLO", "3")
	sub.expect(">3\r\n"+bulk("subscribe")+bulk("c")+integer(1), "SUBSCRIBE", "c")
	if v := sub.value("LOCK", "job", "me"); v != int64(1) {
		t.Fatalf("LOCK while subscribed (RESP3) = %v, want token 1", v)
	}
	pub.int("PUBLISH", "c", "m")
	if got, want := sub.reply(), ">3\r\n"+bulk("message")+bulk("c")+bulk("m"); got != want {
		t.Fatalf("push: got %q, want %q", got, want)
	}
}

func TestCommandsPipelinedAfterSubscribeRunSubscribed(t *testing.T) {
	srv := startServer(t)
	sub := dial(t, srv)
	// SET starts a pipeline (a write followed by more commands); the
	// commands after SUBSCRIBE run in subscribed mode.
	sub.send(encode("SET", "k", "v") + encode("SUBSCRIBE", "c") + encode("PING") + encode("GET", "k"))
	want := "+OK\r\n" + confirm("subscribe", "c", 1) + "*2\r\n" + bulk("pong") + bulk("") +
		"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n"
	got := sub.reply() + sub.reply() + sub.reply() + sub.reply()
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestPublishInTransactionsAndScripts(t *testing.T) {
	srv := startServer(t)
	sub, pub := dial(t, srv), dial(t, srv)
	sub.expect(confirm("subscribe", "c", 1), "SUBSCRIBE", "c")
	pub.expect("+OK\r\n", "MULTI")
	pub.expect("+QUEUED\r\n", "PUBLISH", "c", "from-multi")
	pub.value("EXEC")
	pub.value("EVAL", "redis.call('del', KEYS[1]); return redis.call('publish', 'c', ARGV[1])", "1", "lock", "from-script")
	if got, want := sub.reply()+sub.reply(), message("c", "from-multi")+message("c", "from-script"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestKeyspaceNotifications(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.NotifyKeyspaceEvents = "KEA" })
	sub, cl := dial(t, srv), dial(t, srv)
	sub.expect(confirm("subscribe", "__keyspace@0__:job", 1), "SUBSCRIBE", "__keyspace@0__:job")
	sub.expect(confirm("subscribe", "__keyevent@0__:expired", 2), "SUBSCRIBE", "__keyevent@0__:expired")

	cl.int("LOCK", "job", "a", "PX", "100000")
	if v := cl.value("LOCK", "job", "b"); v != nil { // refused: no event
		t.Fatalf("LOCK of a held lock = %v, want null", v)
	}
	cl.int("UNLOCK", "job", "a")
	cl.expect("+OK\r\n", "SET", "job", "c", "PX", "50")
	want := message("__keyspace@0__:job", "grant") + message("__keyspace@0__:job", "del") +
		message("__keyspace@0__:job", "set")
	if got := sub.reply() + sub.reply() + sub.reply(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The lease runs out: both channels hear of it, in the order delivered.
	if got, want := sub.reply()+sub.reply(), message("__keyspace@0__:job", "expired")+message("__keyevent@0__:expired", "job"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestKeyspaceNotificationsAreOffByDefault(t *testing.T) {
	srv := startServer(t)
	sub, cl := dial(t, srv), dial(t, srv)
	sub.expect(confirm("psubscribe", "__key*", 1), "PSUBSCRIBE", "__key*")
	sub.expect(confirm("subscribe", "marker", 2), "SUBSCRIBE", "marker")
	cl.int("LOCK", "job", "a")
	cl.int("PUBLISH", "marker", "after the lock")
	// Messages arrive in log order: the marker comes first only because
	// the LOCK produced nothing.
	if got, want := sub.reply(), message("marker", "after the lock"); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBadNotifyKeyspaceEventsIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = New(Config{Listener: ln, NotifyKeyspaceEvents: "KQ"})
	if err == nil || !strings.Contains(err.Error(), "unknown class") {
		t.Fatalf("New with notify-keyspace-events KQ: err %v, want unknown class", err)
	}
}

func TestPubSubBadInput(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.MaxChannelLen = 16 })
	rc := dial(t, srv)
	long := strings.Repeat("x", 17)
	for _, args := range [][]string{
		{"PUBLISH", long, "m"},
		{"SUBSCRIBE", "ok", long},
		{"PSUBSCRIBE", long},
	} {
		rc.expect("-ERR channel name or pattern too long\r\n", args...)
	}
	rc.expect("-ERR wrong number of arguments for 'publish' command\r\n", "PUBLISH", "c")
	rc.expect("-ERR wrong number of arguments for 'subscribe' command\r\n", "SUBSCRIBE")
	rc.expect("-ERR unknown subcommand or wrong number of arguments for 'NOPE'. Try PUBSUB HELP.\r\n", "PUBSUB", "NOPE")
	// Nothing was subscribed: the client is not in subscribed mode.
	rc.expect("$-1\r\n", "GET", "k")
	if got := rc.value("PUBSUB", "NUMSUB", "ok"); len(got.([]any)) != 2 || got.([]any)[1] != int64(0) {
		t.Fatalf("PUBSUB NUMSUB ok = %v, want [ok 0]", got)
	}
}

// A subscriber that never reads is disconnected once PubSubBufferLimit
// bytes wait for it; publishers never wait for it, and the node goes on.
func TestSlowSubscriberIsDisconnected(t *testing.T) {
	srv := startServer(t, func(c *Config) { c.PubSubBufferLimit = 256 << 10 })
	sub := dial(t, srv)
	sub.expect(confirm("subscribe", "c", 1), "SUBSCRIBE", "c")
	rdb := newRedis(t, srv)
	ctx := context.Background()
	payload := strings.Repeat("m", 60<<10)
	closed := false
	// Bounded: at most 2,000 messages of 60 KiB (120 MB), far past any
	// socket buffer and the limit.
	for i := 0; i < 2000 && !closed; i++ {
		if err := rdb.Publish(ctx, "c", payload).Err(); err != nil {
			t.Fatalf("PUBLISH %d: %v", i, err)
		}
		if i%50 == 49 {
			closed = srv.hub.NumSub("c") == 0
		}
	}
	poll(t, "the slow subscriber to be dropped", func() bool { return srv.hub.NumSub("c") == 0 })
	// Its connection ends: reading it drains what was sent, then EOF.
	sub.c.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.Copy(io.Discard, sub.c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the slow subscriber's connection is still open")
		}
	}
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("the node after the drop: %v", err)
	}
}

// Close ends subscribers' connections too, and returns.
func TestCloseEndsSubscribers(t *testing.T) {
	srv := startServer(t)
	sub := dial(t, srv)
	sub.expect(confirm("subscribe", "c", 1), "SUBSCRIBE", "c")
	done := make(chan struct{})
	go func() {
		srv.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(replyTimeout):
		t.Fatal("Close did not return with a subscriber connected")
	}
	sub.expectClosed()
}

func TestGoRedisPubSub(t *testing.T) {
	srv := startServer(t)
	rdb := newRedis(t, srv)
	ctx := context.Background()
	ps := rdb.Subscribe(ctx, "news")
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the confirmation
		t.Fatal(err)
	}
	if err := rdb.Publish(ctx, "news", "hello").Err(); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel := context.WithTimeout(ctx, replyTimeout)
	defer cancel()
	m, err := ps.ReceiveMessage(ctx2)
	if err != nil {
		t.Fatal(err)
	}
	if m.Channel != "news" || m.Payload != "hello" {
		t.Fatalf("got %s %q, want news hello", m.Channel, m.Payload)
	}
}

// A RESP3 subscriber blocked in a command (LOCK ... WAIT) still receives
// its messages meanwhile; the command's reply comes when it is done.
func TestSubscriberBlockedInACommandStillReceivesMessages(t *testing.T) {
	srv := startServer(t)
	sub, other := dial(t, srv), dial(t, srv)
	sub.value("HELLO", "3")
	sub.expect(">3\r\n"+bulk("subscribe")+bulk("c")+integer(1), "SUBSCRIBE", "c")
	other.int("LOCK", "job", "a")
	sub.send(encode("LOCK", "job", "b", "WAIT", "20000"))
	poll(t, "the LOCK ... WAIT to queue", func() bool { return srv.Node().Table().Waiting() == 1 })
	other.int("PUBLISH", "c", "while-waiting")
	if got, want := sub.reply(), ">3\r\n"+bulk("message")+bulk("c")+bulk("while-waiting"); got != want {
		t.Fatalf("got %q, want the message first", got)
	}
	other.int("UNLOCK", "job", "a")
	if got := sub.reply(); got != integer(2) {
		t.Fatalf("LOCK ... WAIT answered %q, want token 2", got)
	}
}
