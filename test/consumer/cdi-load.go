// cdi-load: loads CDI spec folders with the CNCF CDI Go library as Debian packages it (the
// library inside podman 4.3), fails on any error, and injects every device into an empty OCI
// spec, printing the result as JSON ({"qualified name": OCI spec}) for comparison.
//
// Built offline in GOPATH mode against /usr/share/gocode (see scripts/cdi-consumer-check.sh).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/container-orchestrated-devices/container-device-interface/pkg/cdi"
	oci "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: cdi-load SPEC-DIR...")
		os.Exit(2)
	}
	cache, err := cdi.NewCache(cdi.WithSpecDirs(os.Args[1:]...), cdi.WithAutoRefresh(false))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cdi-load: %v\n", err)
		os.Exit(1)
	}
	failed := false
	for path, errs := range cache.GetErrors() {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "cdi-load: %s: %v\n", path, e)
			failed = true
		}
	}
	names := cache.ListDevices()
	sort.Strings(names)
	if len(names) == 0 {
		fmt.Fprintln(os.Stderr, "cdi-load: no devices resolved")
		failed = true
	}
	out := map[string]*oci.Spec{}
	for _, name := range names {
		spec := &oci.Spec{Process: &oci.Process{Env: []string{"PATH=/usr/bin"}}}
		if _, err := cache.InjectDevices(spec, name); err != nil {
			fmt.Fprintf(os.Stderr, "cdi-load: inject %s: %v\n", name, err)
			failed = true
			continue
		}
		out[name] = spec
	}
	if failed {
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}
