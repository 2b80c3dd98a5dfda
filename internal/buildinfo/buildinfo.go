// Package buildinfo reports the version of the dagmm build.
package buildinfo

import "runtime/debug"

// Version is set at link time (-ldflags "-X github.com/dagmm/dagmm/internal/buildinfo.Version=v1.2.3");
// when empty, [String] falls back to the module version recorded by the Go tool.
var Version = ""

// String returns the project version: the link-time Version, else the main
// module's version, else "devel".
func String() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
