package controller_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/ebbflow/ebbflow/controller/controllertest"
)

// raw is a request or response as the bytes on the wire, so a test can send what no generated
// client would.
type raw struct{ b []byte }

type rawCodec struct{ name string }

func (c rawCodec) Name() string { return c.name }
func (c rawCodec) Marshal(msg any) ([]byte, error) {
	return msg.(*raw).b, nil
}

// Unmarshal keeps a response's bytes; anything else (gRPC's error status) is protobuf.
func (c rawCodec) Unmarshal(b []byte, msg any) error {
	if r, ok := msg.(*raw); ok {
		r.b = append([]byte(nil), b...)
		return nil
	}
	return proto.Unmarshal(b, msg.(proto.Message))
}

// protocols are the three ways a client reaches a handler, each with the encoding it sends.
var protocols = []struct {
	name  string
	json  bool
	opts  []connect.ClientOption
	codec string
}{
	{"connect+json", true, nil, "json"},
	{"grpc", false, []connect.ClientOption{connect.WithGRPC()}, "proto"},
	{"grpc-web", false, []connect.ClientOption{connect.WithGRPCWeb()}, "proto"},
}

// methods lists every RPC of the API with its request type.
func methods(t *testing.T) []protoreflect.MethodDescriptor {
	t.Helper()
	var out []protoreflect.MethodDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("ebbflow.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, sd.Methods().Get(j))
			}
		}
		return true
	})
	if len(out) < 30 {
		t.Fatalf("found %d RPCs in ebbflow.v1; the registry is not what this test expects", len(out))
	}
	return out
}

// send calls md with body over protocol p and returns the call's error.
func send(ctx context.Context, hc *http.Client, url string, md protoreflect.MethodDescriptor, opts []connect.ClientOption, codec string, body []byte) error {
	procedure := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	opts = append([]connect.ClientOption{connect.WithCodec(rawCodec{codec})}, opts...)
	cl := connect.NewClient[raw, raw](hc, url+procedure, opts...)
	if md.IsStreamingServer() {
		stream, err := cl.CallServerStream(ctx, connect.NewRequest(&raw{body}))
		if err != nil {
			return err
		}
		defer stream.Close()
		if stream.Receive() {
			return errors.New("the stream sent a message")
		}
		return stream.Err()
	}
	_, err := cl.CallUnary(ctx, connect.NewRequest(&raw{body}))
	return err
}

// h2c is an HTTP client that speaks HTTP/2 without TLS, as gRPC needs.
func h2c() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}}
}

// Every request type, in every protocol, is refused with InvalidArgument naming the field when
// it carries a field its schema does not declare: nothing a client sends is silently dropped.
func TestUnknownFieldsAreRefusedEverywhere(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	ctx := context.Background()
	hc := h2c()
	unknownBinary := protowire.AppendVarint(protowire.AppendTag(nil, 4999, protowire.VarintType), 1)
	for _, md := range methods(t) {
		for _, p := range protocols {
			body, want := unknownBinary, "field number 4999"
			if p.json {
				body, want = []byte(`{"lables":{"a":"b"}}`), `unknown field "lables"`
			}
			err := send(ctx, hc, n.URL, md, p.opts, p.codec, body)
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), want) {
				t.Errorf("%s over %s with an unknown field: %v, want invalid_argument naming it (%s)", md.FullName(), p.name, err, want)
			}
		}
	}
}

// An enum value outside its declared set is refused, naming the field, in every request that
// has an enum field (at the top or one message down), in every protocol.
func TestUndefinedEnumValuesAreRefused(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	ctx := context.Background()
	hc := h2c()
	tested := 0
	for _, md := range methods(t) {
		msg, path := withUndefinedEnum(md.Input())
		if msg == nil {
			continue
		}
		tested++
		for _, p := range protocols {
			var body []byte
			var err error
			if p.json {
				body, err = protojson.Marshal(msg)
			} else {
				body, err = proto.Marshal(msg)
			}
			if err != nil {
				t.Fatal(err)
			}
			err = send(ctx, hc, n.URL, md, p.opts, p.codec, body)
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), path+": 99 is not a value") {
				t.Errorf("%s over %s with %s = 99: %v, want invalid_argument naming %s", md.FullName(), p.name, path, err, path)
			}
		}
	}
	if tested < 5 {
		t.Fatalf("only %d request types have an enum field within reach; the search is broken", tested)
	}
}

// withUndefinedEnum returns a request of type d whose first enum field (at the top or in a
// singular message field) is 99, with the field's path; nil when d has none.
func withUndefinedEnum(d protoreflect.MessageDescriptor) (proto.Message, string) {
	m := dynamicpb.NewMessage(d)
	for i := 0; i < d.Fields().Len(); i++ {
		fd := d.Fields().Get(i)
		if fd.Kind() == protoreflect.EnumKind && !fd.IsList() && !fd.IsMap() {
			m.Set(fd, protoreflect.ValueOfEnum(99))
			return m, string(fd.Name())
		}
	}
	for i := 0; i < d.Fields().Len(); i++ {
		fd := d.Fields().Get(i)
		if fd.Kind() != protoreflect.MessageKind || fd.IsList() || fd.IsMap() {
			continue
		}
		inner := fd.Message()
		for j := 0; j < inner.Fields().Len(); j++ {
			ifd := inner.Fields().Get(j)
			if ifd.Kind() == protoreflect.EnumKind && !ifd.IsList() && !ifd.IsMap() {
				im := dynamicpb.NewMessage(inner)
				im.Set(ifd, protoreflect.ValueOfEnum(99))
				m.Set(fd, protoreflect.ValueOfMessage(im))
				return m, string(fd.Name()) + "." + string(ifd.Name())
			}
		}
	}
	return nil, ""
}

// The request that used to wipe a cluster's labels: a misspelt field over Connect JSON, as
// curl sends it, is refused and the labels stay.
func TestMisspeltLabelsKeepTheLabels(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	post := func(procedure, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/ebbflow.v1.ClusterService/"+procedure, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := post("RegisterCluster", `{"name":"p1","labels":{"env":"prod"}}`); code != http.StatusOK {
		t.Fatalf("RegisterCluster: %d %s", code, body)
	}
	code, body := post("SetClusterLabels", `{"name":"p1","lables":{"env":"dev"}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, `"invalid_argument"`) || !strings.Contains(body, `unknown field \"lables\"`) {
		t.Fatalf("SetClusterLabels with a misspelt field: %d %s", code, body)
	}
	t.Logf("SetClusterLabels with a misspelt field: %d %s", code, body)
	code, body = post("GetCluster", `{"name":"p1"}`)
	if code != http.StatusOK || !strings.Contains(body, `"env":"prod"`) {
		t.Fatalf("labels after the refused call: %d %s", code, body)
	}
}

// Values the schema bounds are refused over Connect JSON, gRPC and gRPC-Web with the field's
// path and the rule:
// the ones a portal could once store (a 1 ns deadline, a 10,000-year soak, a canary of 2^31-1
// clusters), and a huge name is not echoed back.
func TestOutOfRangeValuesAreRefused(t *testing.T) {
	n := controllertest.Start(t, controllertest.Options{})
	hc := h2c()
	huge := strings.Repeat("n", 10000)
	for _, tc := range []struct {
		procedure, body, field, rule string
	}{
		{"RolloutService/CreateRollout", `{"id":"r1","spec":{"profile":"p","automatic":{"waveSize":1},"progressDeadline":"0.000000001s"}}`,
			"spec.progress_deadline", "duration.none_or_at_least_10s"},
		{"RolloutService/CreateRollout", `{"id":"r1","spec":{"profile":"p","automatic":{"waveSize":1,"gates":{"soakTime":"315360000000s"}}}}`,
			"spec.automatic.gates.soak_time", "duration.gte_lte"},
		{"RolloutService/CreateRollout", `{"id":"r1","spec":{"profile":"p","automatic":{"canaryCount":2147483647,"waveSize":1}}}`,
			"spec.automatic.canary_count", "int32.gte_lte"},
		{"RolloutService/PlanRollout", `{"spec":{"profile":"p","automatic":{"wavePercent":101}}}`,
			"spec.automatic.wave_percent", "int32.gte_lte"},
		{"ProfileService/ListProfiles", `{"pageSize":100000}`, "page_size", "int32.gte_lte"},
		{"AccessService/CreateJoinToken", `{"cluster":"c1","ttl":"31536000s"}`, "ttl", "duration.gte_lte"},
		{"ClusterService/GetCluster", `{"name":"` + huge + `"}`, "name", "string.max_len"},
	} {
		req, _ := http.NewRequest(http.MethodPost, n.URL+"/ebbflow.v1."+tc.procedure, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		body := string(b)
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.field+":") || !strings.Contains(body, "("+tc.rule+")") {
			t.Errorf("%s %s: %d %s, want invalid_argument naming %s (%s)", tc.procedure, clipped(tc.body), res.StatusCode, clipped(body), tc.field, tc.rule)
		}
		if len(body) > 2000 {
			t.Errorf("%s: the refusal is %d bytes; values must not be echoed whole", tc.procedure, len(body))
		}

		// The same request in binary over gRPC and gRPC-Web meets the same rules.
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("ebbflow.v1." + strings.ReplaceAll(tc.procedure, "/", ".")))
		if err != nil {
			t.Fatal(err)
		}
		md := d.(protoreflect.MethodDescriptor)
		msg := dynamicpb.NewMessage(md.Input())
		if err := protojson.Unmarshal([]byte(tc.body), msg); err != nil {
			t.Fatal(err)
		}
		bin, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range protocols[1:] {
			err := send(context.Background(), hc, n.URL, md, p.opts, p.codec, bin)
			if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), tc.field+":") || len(err.Error()) > 2000 {
				t.Errorf("%s over %s: %s, want invalid_argument naming %s", tc.procedure, p.name, clipped(fmt.Sprint(err)), tc.field)
			}
		}
	}
}

func clipped(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
