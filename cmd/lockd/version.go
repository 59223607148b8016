package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/lockd/lockd/server"
)

// buildInfo is the module information the go command recorded in this
// binary, nil if it recorded none (a build without module support).
func buildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionOf is lockd's version as INFO (lockd_version) and HELLO report it
// and --version's first line shows it: the release, server.DefaultVersion;
// then the main module's version, "(devel)" when the build did not know it;
// then the first 12 digits of the VCS revision, when the build recorded one
// that the module version does not already name. Built from a git checkout
// (with -buildvcs, the go command's default there), the module version is
// the tag or a pseudo-version holding the revision's time and first 12
// digits, with "+dirty" when the tree was modified:
//
//	0.1.0 (devel)                                      no VCS information (go test, -buildvcs=false)
//	0.1.0 v0.0.0-20261126161501-0123456789ab+dirty     a checkout with uncommitted changes
//	0.1.0 v0.1.0 0123456789ab                          the commit tagged v0.1.0
//
// bi may be nil: the release alone.
func versionOf(bi *debug.BuildInfo) string {
	v := server.DefaultVersion
	if bi == nil {
		return v
	}
	mod := bi.Main.Version
	if mod == "" {
		mod = "(devel)"
	}
	v += " " + mod
	if rev := setting(bi, "vcs.revision"); rev != "" {
		if short := rev[:min(len(rev), 12)]; !strings.Contains(mod, short) {
			v += " " + short
		}
	}
	return v
}

// setting is the value of bi's build setting key, "" when it has none.
func setting(bi *debug.BuildInfo, key string) string {
	for _, s := range bi.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// writeVersion prints what lockd --version does: "lockd " and versionOf(bi)
// on one line, then bi in the form go version -m prints it, one field a
// line: the Go version, the main package's path, the main module, every
// dependency with its version and checksum, and the build settings (among
// them vcs.revision, vcs.time and vcs.modified when the build recorded
// them).
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	fmt.Fprintln(w, "lockd", versionOf(bi))
	if bi == nil {
		fmt.Fprintf(w, "go\t%s\n", runtime.Version())
		return
	}
	io.WriteString(w, bi.String())
}
