package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lockd/lockd/replication"
	"github.com/lockd/lockd/server"
)

// With no flags, lockd configures its node exactly as a Config left to its
// own defaults would be: the flags' defaults are the Config types' defaults,
// apart from who and where the node is, which only the flags default.
func TestFlagDefaultsAreConfigDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	got := o.config(nil, nil, nil, map[uint64]string{o.id: o.clusterListen}, log)

	// What no Config defaults: the node's id, members, data directory and
	// cluster name.
	want := server.Config{
		Node: replication.Config{
			ID:        got.Node.ID,
			Peers:     got.Node.Peers,
			DataDir:   got.Node.DataDir,
			ClusterID: got.Node.ClusterID,
		},
		Logger: log,
	}
	t.Run("server.Config", func(t *testing.T) {
		// Build is the build's (TestVersion), not a flag's.
		sameFields(t, got.WithDefaults(), want.WithDefaults(), "Node", "Build")
	})
	t.Run("replication.Config", func(t *testing.T) {
		sameFields(t, got.Node.WithDefaults(), want.Node.WithDefaults())
	})
}

// sameFields checks, one subtest per field, that the structs got and want
// hold equal values in their exported fields, except func fields (which
// cannot be compared) and those named in skip.
func sameFields[T any](t *testing.T, got, want T, skip ...string) {
	t.Helper()
	g, w := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range g.NumField() {
		f := g.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() == reflect.Func || slices.Contains(skip, f.Name) {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			if gv, wv := g.Field(i).Interface(), w.Field(i).Interface(); !reflect.DeepEqual(gv, wv) {
				t.Errorf("%s = %v with no flags; the Config default is %v", f.Name, gv, wv)
			}
		})
	}
}

// Client-port flags that cannot serve are refused before anything starts,
// with a message that names the flags; those that can derive the cluster
// address from the TLS port when there is no plaintext one.
func TestClientPortFlags(t *testing.T) {
	tls := []string{"--tls-port", "127.0.0.1:6380", "--tls-cert-file", "c.pem", "--tls-key-file", "k.pem"}
	for _, tc := range []struct {
		name    string
		args    []string
		err     string // "" when accepted
		cluster string // the cluster address when accepted
	}{
		{"plaintext", nil, "", "127.0.0.1:7379"},
		{"no-port-at-all", []string{"--listen", ""}, `--listen "" turns the plaintext port off: give --tls-port`, ""},
		{"tls-files-without-tls-port", []string{"--tls-cert-file", "c.pem"}, "--tls-cert-file, --tls-key-file and --tls-ca-cert-file serve the TLS port: give --tls-port", ""},
		{"tls-port-without-key", []string{"--tls-port", "127.0.0.1:6380", "--tls-cert-file", "c.pem"}, "--tls-port needs --tls-cert-file and --tls-key-file", ""},
		{"auth-clients-yes-without-CA", tls, "--tls-auth-clients yes verifies client certificates: give --tls-ca-cert-file (or --tls-auth-clients no)", ""},
		{"auth-clients-optional-without-CA", append(tls, "--tls-auth-clients", "optional"), "--tls-auth-clients optional verifies client certificates", ""},
		{"auth-clients-unknown", append(tls, "--tls-auth-clients", "sometimes"), `--tls-auth-clients "sometimes": want yes, no or optional`, ""},
		{"auth-clients-user-unknown", append(tls, "--tls-auth-clients", "no", "--tls-auth-clients-user", "SAN"), `--tls-auth-clients-user "SAN": want CN or off`, ""},
		{"auth-clients-user-CN-without-client-certificates", append(tls, "--tls-auth-clients", "no", "--tls-auth-clients-user", "CN"), "--tls-auth-clients-user CN takes the user from a verified client certificate", ""},
		{"handshake-timeout-zero", append(tls, "--tls-auth-clients", "no", "--tls-handshake-timeout", "0s"), "must be positive", ""},
		{"beside-plaintext", append(tls, "--tls-ca-cert-file", "ca.pem"), "", "127.0.0.1:7379"},
		{"tls-only", append(tls, "--listen", "", "--tls-auth-clients", "no"), "", "127.0.0.1:7380"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("parseFlags(%q): %v", tc.args, err)
			case tc.err == "" && o.clusterListen != tc.cluster:
				t.Fatalf("parseFlags(%q): cluster address %s; want %s", tc.args, o.clusterListen, tc.cluster)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("parseFlags(%q): %v; want an error with %q", tc.args, err, tc.err)
			}
		})
	}
}

// --protected-mode takes Redis's yes or no; no turns protected mode off.
func TestProtectedModeFlag(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		arg         string
		unprotected bool
		err         string
	}{
		{"yes", false, ""},
		{"no", true, ""},
		{"off", false, `--protected-mode "off": want yes or no`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			o, err := parseFlags([]string{"--protected-mode", tc.arg}, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("--protected-mode %s: %v; want an error with %q", tc.arg, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := o.config(nil, nil, nil, map[uint64]string{o.id: o.clusterListen}, log).Unprotected; got != tc.unprotected {
				t.Fatalf("--protected-mode %s: Unprotected = %v, want %v", tc.arg, got, tc.unprotected)
			}
		})
	}
}

// --requirepass-file gives the password without showing it in the process
// list; with --requirepass too, or empty, or missing, it is refused.
func TestRequirepassFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, empty := write("pass", "  s3cret-pass\n"), write("empty", " \n")
	o, err := parseFlags([]string{"--requirepass-file", good}, io.Discard)
	if err != nil || o.password != "s3cret-pass" {
		t.Fatalf("--requirepass-file: password %q, %v; want s3cret-pass", o.password, err)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--requirepass-file", good, "--requirepass", "x"}, "not both"},
		{[]string{"--requirepass-file", empty}, "is empty"},
		{[]string{"--requirepass-file", filepath.Join(dir, "missing")}, "no such file"},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("parseFlags(%q): %v; want an error with %q", tc.args, err, tc.err)
		}
	}
}

// --log-format takes text or json and defaults to DefaultLogFormat, text;
// any other value is refused with a message that names the flag, and lockd
// exits 2 before it opens anything.
func TestLogFormatFlag(t *testing.T) {
	if DefaultLogFormat != LogFormatText {
		t.Fatalf("DefaultLogFormat = %q; lockd logged text before --log-format", DefaultLogFormat)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string // the format parsed; "" when refused
	}{
		{"default", nil, LogFormatText},
		{"text", []string{"--log-format", "text"}, LogFormatText},
		{"json", []string{"--log-format", "json"}, LogFormatJSON},
		{"one-dash", []string{"-log-format=json"}, LogFormatJSON},
		{"upper-case", []string{"--log-format", "JSON"}, ""},
		{"logfmt", []string{"--log-format", "logfmt"}, ""},
		{"empty", []string{"--log-format", ""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseFlags(tc.args, io.Discard)
			if tc.want != "" {
				if err != nil || o.logFormat != tc.want {
					t.Fatalf("parseFlags(%q) = %+v, %v; want log format %s", tc.args, o, err, tc.want)
				}
				return
			}
			var stderr strings.Builder
			dir := filepath.Join(t.TempDir(), "data")
			// --peers is wrong too, and checked after the logger is made:
			// should --log-format pass, lockd exits with that message
			// instead of starting a node.
			args := append(tc.args, "--data-dir", dir, "--peers", "1=nowhere")
			if rc := run(args, io.Discard, &stderr); rc != 2 {
				t.Fatalf("run(%q) = %d; want 2", tc.args, rc)
			}
			want := fmt.Sprintf("lockd: --log-format %q: want text or json\n", tc.args[1])
			if stderr.String() != want {
				t.Fatalf("run(%q) printed %q; want %q", tc.args, stderr.String(), want)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("run(%q) made the data directory (%v)", tc.args, err)
			}
		})
	}
}
