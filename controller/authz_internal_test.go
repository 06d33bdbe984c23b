package controller

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// Every RPC of the API has a required access: a new RPC without one would be refused to all
// but nodes, so this test makes the omission loud instead.
func TestEveryProcedureIsInTheTable(t *testing.T) {
	n := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("ebbflow.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				p := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				n++
				if _, ok := procedures[p]; !ok {
					t.Errorf("%s has no entry in the procedure table", p)
				}
			}
		}
		return true
	})
	if n < 40 {
		t.Fatalf("found only %d procedures; the registry walk is broken", n)
	}
	for p := range procedures {
		if strings.HasPrefix(p, "/ebbflow.v1.") && !strings.Contains(p[1:], "/") {
			t.Errorf("procedure table entry %q is not a procedure", p)
		}
	}
}

func TestForwardedIdentityRoundTrips(t *testing.T) {
	for _, id := range []Identity{
		{Kind: 1, Name: "alice", Role: 2, Method: "token", Actor: "alice"},
		{Kind: 2, Name: "eu-1", Method: "certificate", Actor: "agent:eu-1"},
		{Actor: "anonymous", Method: "none"},
	} {
		got, err := decodeIdentity(encodeIdentity(id))
		if err != nil {
			t.Fatal(err)
		}
		if got != id {
			t.Errorf("round trip of %+v gave %+v", id, got)
		}
	}
	for _, bad := range []string{"kind=IDENTITY_KIND_ROOT", "kind=IDENTITY_KIND_PERSON&role=ROLE_GOD", "%zz"} {
		if _, err := decodeIdentity(bad); err == nil {
			t.Errorf("decodeIdentity(%q) accepted it", bad)
		}
	}
}
