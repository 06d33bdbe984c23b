package profile

import (
	"os"
	"testing"
)

// The demo's profile validates too.
func TestDemoProfileValidates(t *testing.T) {
	b, err := os.ReadFile("../../e2e/demo-profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name, spec, err := DecodeYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	if res := Validate(name, spec); len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
}
