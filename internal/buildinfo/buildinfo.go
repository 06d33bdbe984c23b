// Package buildinfo reports the version Ebbflow's binaries were built from.
package buildinfo

import "runtime/debug"

// version is set with -ldflags "-X github.com/ebbflow/ebbflow/internal/buildinfo.version=v1.2.3".
var version = ""

// Version is the release version, else the module version or VCS revision, else "dev".
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return "dev"
}
