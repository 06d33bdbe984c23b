// Command openapi turns the OpenAPI 2 document protoc-gen-openapiv2 writes for the API
// (openapi/ebbflow.swagger.json: one POST per RPC at /<package>.<Service>/<Method>, the
// Connect protocol's unary JSON path) into the OpenAPI 3 document a portal team loads
// (openapi/ebbflow.openapi.json), with what the conversion cannot know added:
//
//   - bearer-token security on every operation but JoinCluster (its join token authenticates
//     it) and the Connect-Protocol-Version header;
//   - the Connect error body ({"code": "invalid_argument", "message": ..., "details": [...]})
//     as every operation's error response;
//   - GET for the reads the schema declares free of side effects, with the Connect GET query
//     (?connect=v1&encoding=json&message=<URL-encoded JSON request>);
//   - a note on the server-streaming RPCs, which use the Connect streaming protocol
//     (application/connect+json, enveloped messages), not one JSON body.
//
// `make generate` runs it; `make checkgenerate` fails on drift. The conversion itself is
// kin-openapi's openapi2conv.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	_ "github.com/ebbflow/ebbflow/proto/ebbflow/v1" // the API's descriptors, for idempotency and streaming
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: openapi <ebbflow.swagger.json>  (writes OpenAPI 3 JSON to stdout)")
		os.Exit(2)
	}
	out, err := convert(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapi:", err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}

func convert(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc2 openapi2.T
	if err := json.Unmarshal(raw, &doc2); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	doc, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, err
	}
	doc.Info.Title = "Ebbflow API"
	doc.Info.Version = "v1"
	doc.Info.Description = "The Ebbflow fleet controller's API over the Connect protocol with JSON: POST " +
		"/<package>.<Service>/<Method> with Content-Type application/json and the request message as the body " +
		"(lowerCamelCase or proto field names; unknown fields are refused). The same procedures answer gRPC and gRPC-Web. " +
		"Reads also answer GET. Errors are Connect errors with an HTTP status mapped from the code."
	doc.Servers = openapi3.Servers{{URL: "https://localhost:7070", Description: "a fleet-controller node (any node: writes are forwarded to the leader)"}}
	if doc.Components == nil {
		doc.Components = &openapi3.Components{}
	}
	doc.Components.SecuritySchemes = openapi3.SecuritySchemes{
		"bearer": {Value: &openapi3.SecurityScheme{Type: "http", Scheme: "bearer",
			Description: "A static token (--tokens-file) or a JWT from the configured issuer; agents use mTLS instead."}},
	}
	if doc.Components.Schemas == nil {
		doc.Components.Schemas = openapi3.Schemas{}
	}
	doc.Components.Schemas["ConnectError"] = &openapi3.SchemaRef{Value: connectError()}
	doc.Security = openapi3.SecurityRequirements{{"bearer": {}}}

	for _, p := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(p)
		op := item.Post
		if op == nil {
			continue
		}
		md, err := method(p)
		if err != nil {
			return nil, err
		}
		op.Parameters = append(op.Parameters, &openapi3.ParameterRef{Value: openapi3.NewHeaderParameter("Connect-Protocol-Version").
			WithDescription("1 (optional for unary JSON calls)").WithSchema(openapi3.NewStringSchema().WithEnum("1"))})
		op.Responses.Set("default", &openapi3.ResponseRef{Value: openapi3.NewResponse().
			WithDescription("A Connect error: code (e.g. invalid_argument with google.rpc.BadRequest field violations, not_found, failed_precondition, permission_denied, unavailable) and message.").
			WithJSONSchemaRef(openapi3.NewSchemaRef("#/components/schemas/ConnectError", nil))})
		if md.Name() == "JoinCluster" {
			op.Security = &openapi3.SecurityRequirements{{}} // the join token in the body authenticates it
		}
		if md.IsStreamingServer() {
			op.Description = strings.TrimSpace(op.Description + "\n\nServer-streaming: call it with the Connect streaming protocol " +
				"(Content-Type application/connect+json, each message in a 5-byte envelope) or gRPC; the 200 schema is one message of the stream.")
		}
		if idempotency(md) == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
			item.Get = getOperation(op)
		}
	}
	doc.OpenAPI = "3.0.3"
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// method finds the RPC of an operation path /<package>.<Service>/<Method>.
func method(path string) (protoreflect.MethodDescriptor, error) {
	svc, name, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("path %s is not /<service>/<method>", path)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, fmt.Errorf("path %s: %w", path, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("path %s: %s is not a service", path, svc)
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("path %s: no method %s", path, name)
	}
	return md, nil
}

func idempotency(md protoreflect.MethodDescriptor) descriptorpb.MethodOptions_IdempotencyLevel {
	if o, ok := md.Options().(*descriptorpb.MethodOptions); ok {
		return o.GetIdempotencyLevel()
	}
	return descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
}

// getOperation is op as a Connect GET: the request in the query instead of the body.
func getOperation(op *openapi3.Operation) *openapi3.Operation {
	get := *op
	get.OperationID = op.OperationID + "_GET"
	get.RequestBody = nil
	get.Parameters = append(openapi3.Parameters{
		{Value: openapi3.NewQueryParameter("connect").WithRequired(true).WithSchema(openapi3.NewStringSchema().WithEnum("v1"))},
		{Value: openapi3.NewQueryParameter("encoding").WithRequired(true).WithSchema(openapi3.NewStringSchema().WithEnum("json"))},
		{Value: openapi3.NewQueryParameter("message").WithRequired(true).
			WithDescription("The request message as JSON, URL-encoded (the POST body of the same call).").WithSchema(openapi3.NewStringSchema())},
	}, op.Parameters...)
	return &get
}

func connectError() *openapi3.Schema {
	codes := []string{"canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
		"permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented",
		"internal", "unavailable", "data_loss", "unauthenticated"}
	sort.Strings(codes)
	enum := make([]any, len(codes))
	for i, c := range codes {
		enum[i] = c
	}
	described := func(s *openapi3.Schema, d string) *openapi3.Schema { s.Description = d; return s }
	detail := openapi3.NewObjectSchema().
		WithProperty("type", described(openapi3.NewStringSchema(), "e.g. google.rpc.BadRequest, google.rpc.RetryInfo")).
		WithProperty("value", described(openapi3.NewStringSchema(), "the detail message, protobuf binary in base64")).
		WithProperty("debug", described(openapi3.NewObjectSchema(), "the detail as JSON, when the server adds it"))
	s := openapi3.NewObjectSchema().
		WithProperty("code", openapi3.NewStringSchema().WithEnum(enum...)).
		WithProperty("message", openapi3.NewStringSchema()).
		WithProperty("details", openapi3.NewArraySchema().WithItems(detail))
	s.Description = "The Connect protocol's error body."
	return s
}
