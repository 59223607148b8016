package server

import (
	"strings"
	"testing"
)

// INFO's lockd_version is Config.Build when set, Version otherwise; HELLO's
// version is always Version, which client libraries may parse as a Redis
// version (three numbers), so a build's description never reaches it.
func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		name           string
		version, build string // Config's
		info, hello    string // lockd_version in INFO, version in HELLO
	}{
		{"defaults", "", "", DefaultVersion, DefaultVersion},
		{"version", "1.2.3", "", "1.2.3", "1.2.3"},
		{"build", "", "0.1.0 v0.0.0-20261126161501-0123456789ab+dirty", "0.1.0 v0.0.0-20261126161501-0123456789ab+dirty", DefaultVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, func(c *Config) { c.Version, c.Build = tc.version, tc.build })
			c := dial(t, srv)
			info := c.value("INFO", "server").(string)
			if !strings.Contains(info, "\r\nlockd_version:"+tc.info+"\r\n") {
				t.Errorf("INFO server has no lockd_version:%s:\n%s", tc.info, info)
			}
			hello, ok := c.value("HELLO", "3").(map[string]any)
			if !ok || hello["version"] != tc.hello {
				t.Errorf("HELLO 3 = %#v; want version %s", hello, tc.hello)
			}
		})
	}
}
