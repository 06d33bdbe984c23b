package main

import (
	"context"
	"fmt"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The checked-in OpenAPI 3 document is valid, has an operation for every RPC of ebbflow.v1
// (GET too for the reads), documents the Connect error, and asks for a bearer token everywhere
// but JoinCluster. (make checkgenerate proves it is what the generators make from proto/.)
func TestOpenAPIDocumentCoversTheAPI(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromFile("../../openapi/ebbflow.openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3: %v", err)
	}
	rpcs := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("ebbflow.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				rpcs++
				path := fmt.Sprintf("/%s/%s", sd.FullName(), md.Name())
				item := doc.Paths.Value(path)
				if item == nil || item.Post == nil {
					t.Errorf("%s: no POST operation", path)
					continue
				}
				if item.Post.Description == "" && item.Post.Summary == "" {
					t.Errorf("%s: no description (comment the rpc in proto/)", path)
				}
				read := md.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
				if read != (item.Get != nil) {
					t.Errorf("%s: GET operation %v, read %v", path, item.Get != nil, read)
				}
				if item.Post.Responses.Value("default") == nil {
					t.Errorf("%s: no error response", path)
				}
				open := item.Post.Security != nil && len(*item.Post.Security) == 1 && len((*item.Post.Security)[0]) == 0
				if open != (md.Name() == "JoinCluster") {
					t.Errorf("%s: open without a token %v", path, open)
				}
			}
		}
		return true
	})
	if rpcs < 40 {
		t.Fatalf("only %d RPCs in the registry", rpcs)
	}
}
