package main

import (
	"io"
	"log/slog"
	"reflect"
	"slices"
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
		sameFields(t, got.WithDefaults(), want.WithDefaults(), "Node")
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
