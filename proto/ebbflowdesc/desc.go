// Package ebbflowdesc holds the API's file descriptors with their source information
// (comments), which the generated Go code leaves out: the controller serves reflection from
// them, so `grpcurl describe` shows what every service, method and field means.
// ebbflow.binpb is written by `buf build` in `make generate` and drift-checked.
package ebbflowdesc

import (
	_ "embed"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

//go:embed ebbflow.binpb
var image []byte

// Files returns the API's files (proto/ebbflow/v1 and what they import) with comments.
func Files() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	// A buf image is a FileDescriptorSet with extra fields, which are left unknown here.
	if err := proto.Unmarshal(image, &set); err != nil {
		return nil, fmt.Errorf("ebbflowdesc: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("ebbflowdesc: %w", err)
	}
	return files, nil
}
