package rollout

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ebbflowv1 "github.com/ebbflow/ebbflow/proto/ebbflow/v1"
)

// diffBase is a running rollout of two waves (c1 c2 c3 | c4).
func diffBase(t *testing.T) *ebbflowv1.Rollout {
	x := start(t, nil, wave(nil, "c1", "c2", "c3"), wave(nil, "c4"))
	x.step()
	return x.r
}

// edit returns a copy of r that shares r's records, as a decision does, after f.
func edit(r *ebbflowv1.Rollout, f func(n *ebbflowv1.Rollout, e *recorder)) *ebbflowv1.Rollout {
	e := &recorder{}
	n := e.begin(r)
	f(n, e)
	return n
}

func TestDiff(t *testing.T) {
	base := diffBase(t)
	type pos struct{ w, i int32 }
	cases := []struct {
		name   string
		old    *ebbflowv1.Rollout
		next   func() *ebbflowv1.Rollout
		header bool
		want   []pos
	}{
		{"the same rollout", base, func() *ebbflowv1.Rollout { return base }, false, nil},
		{"an equal deep copy", base, func() *ebbflowv1.Rollout { return proto.Clone(base).(*ebbflowv1.Rollout) }, false, nil},
		{"copy-on-write with no change", base, func() *ebbflowv1.Rollout { return edit(base, func(*ebbflowv1.Rollout, *recorder) {}) }, false, nil},
		{"the rollout's message", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, _ *recorder) { n.Message = "other" })
		}, true, nil},
		{"a field of the spec", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, _ *recorder) { n.Spec.Phases = append(n.Spec.Phases, xdp) })
		}, true, nil},
		{"a wave's state", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, _ *recorder) { n.Waves[1].State = wWaiting })
		}, true, nil},
		{"one record", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, e *recorder) { e.own(n.Waves[0], 2).Reason = "x" })
		}, false, []pos{{0, 2}}},
		{"one record replaced by an equal copy", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, e *recorder) { e.own(n.Waves[0], 1) })
		}, false, nil},
		{"records in two waves and the header", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, e *recorder) {
				e.own(n.Waves[1], 0).Reason = "x"
				e.own(n.Waves[0], 0).Results = nil
				n.State = rPaused
			})
		}, true, []pos{{0, 0}, {1, 0}}},
		{"reshape: one more wave", base, func() *ebbflowv1.Rollout {
			n := proto.Clone(base).(*ebbflowv1.Rollout)
			n.Waves = append(n.Waves, &ebbflowv1.Wave{Index: 2, Clusters: []*ebbflowv1.RolloutCluster{{Cluster: "c5"}}})
			return n
		}, true, []pos{{0, 0}, {0, 1}, {0, 2}, {1, 0}, {2, 0}}},
		{"reshape: one cluster fewer", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, _ *recorder) { n.Waves[0].Clusters = n.Waves[0].Clusters[:2] })
		}, true, []pos{{0, 0}, {0, 1}, {1, 0}}},
		{"reshape: clusters in another order", base, func() *ebbflowv1.Rollout {
			return edit(base, func(n *ebbflowv1.Rollout, _ *recorder) {
				n.Waves[0].Clusters = slices.Clone(n.Waves[0].Clusters) // the input's until copied
				slices.Reverse(n.Waves[0].Clusters)
			})
		}, true, []pos{{0, 0}, {0, 1}, {0, 2}, {1, 0}}},
		{"no old rollout", nil, func() *ebbflowv1.Rollout { return base }, true, []pos{{0, 0}, {0, 1}, {0, 2}, {1, 0}}},
		{"no next rollout", base, func() *ebbflowv1.Rollout { return nil }, true, nil},
		{"no rollouts at all", nil, func() *ebbflowv1.Rollout { return nil }, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next := tc.next()
			d := Diff(tc.old, next)
			var got []pos
			for _, c := range d.Clusters {
				got = append(got, pos{c.Wave, c.Index})
				if c.Cluster != next.GetWaves()[c.Wave].GetClusters()[c.Index] {
					t.Fatalf("change %d/%d does not point at next's record", c.Wave, c.Index)
				}
			}
			if d.HeaderChanged != tc.header || !slices.Equal(got, tc.want) {
				t.Fatalf("header %v, clusters %v; want %v, %v", d.HeaderChanged, got, tc.header, tc.want)
			}
			if d.Empty() != (!tc.header && len(tc.want) == 0) {
				t.Fatalf("Empty %v", d.Empty())
			}
		})
	}
}

// setField gives m's field fd a value it does not have in an empty message.
func setField(m protoreflect.Message, fd protoreflect.FieldDescriptor) {
	scalar := func() protoreflect.Value {
		switch fd.Kind() {
		case protoreflect.BoolKind:
			return protoreflect.ValueOfBool(true)
		case protoreflect.EnumKind:
			return protoreflect.ValueOfEnum(1)
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			return protoreflect.ValueOfInt32(1)
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			return protoreflect.ValueOfInt64(1)
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			return protoreflect.ValueOfUint32(1)
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return protoreflect.ValueOfUint64(1)
		case protoreflect.FloatKind:
			return protoreflect.ValueOfFloat32(1)
		case protoreflect.DoubleKind:
			return protoreflect.ValueOfFloat64(1)
		case protoreflect.StringKind:
			return protoreflect.ValueOfString("x")
		case protoreflect.BytesKind:
			return protoreflect.ValueOfBytes([]byte("x"))
		}
		panic("kind " + fd.Kind().String())
	}
	switch {
	case fd.IsMap():
		panic("map field " + string(fd.Name()) + ": teach setField maps")
	case fd.IsList():
		l := m.Mutable(fd).List()
		if fd.Message() != nil {
			l.Append(l.NewElement())
		} else {
			l.Append(scalar())
		}
	case fd.Message() != nil:
		m.Set(fd, protoreflect.ValueOfMessage(m.NewField(fd).Message()))
	default:
		m.Set(fd, scalar())
	}
}

// TestHeaderFields goes over every field of Rollout and Wave by reflection, so a field added
// to the proto later is covered: each one outside waves[].clusters is copied by headerOf and
// seen by headerEqual and Diff; the records are neither.
func TestHeaderFields(t *testing.T) {
	rec := func() *ebbflowv1.RolloutCluster { return &ebbflowv1.RolloutCluster{Cluster: "c1"} }
	for _, tc := range []struct {
		empty func() proto.Message
		skip  protoreflect.Name
	}{
		{func() proto.Message {
			return &ebbflowv1.Rollout{Waves: []*ebbflowv1.Wave{{Clusters: []*ebbflowv1.RolloutCluster{rec()}}}}
		}, fieldWaves},
		{func() proto.Message { return &ebbflowv1.Wave{Clusters: []*ebbflowv1.RolloutCluster{rec()}} }, fieldClusters},
	} {
		fields := tc.empty().ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Name() == tc.skip {
				continue
			}
			t.Run(string(fd.FullName()), func(t *testing.T) {
				m := tc.empty()
				setField(m.ProtoReflect(), fd)
				if headerEqual(tc.empty(), m, tc.skip) {
					t.Fatal("headerEqual misses the field")
				}
				h := headerOf(m, tc.skip)
				if !h.ProtoReflect().Has(fd) || h.ProtoReflect().Has(h.ProtoReflect().Descriptor().Fields().ByName(tc.skip)) {
					t.Fatal("headerOf did not copy the field, or copied the skipped one")
				}
				if !headerEqual(m, h, tc.skip) {
					t.Fatal("headerOf's copy differs from its source")
				}
				if v := h.ProtoReflect().Get(fd); fd.Message() != nil && !fd.IsList() && v.Message().Interface() == m.ProtoReflect().Get(fd).Message().Interface() {
					t.Fatal("headerOf shares a message with its source")
				}
				old, next := tc.empty(), m
				if w, ok := m.(*ebbflowv1.Wave); ok {
					old = &ebbflowv1.Rollout{Waves: []*ebbflowv1.Wave{old.(*ebbflowv1.Wave)}}
					next = &ebbflowv1.Rollout{Waves: []*ebbflowv1.Wave{w}}
				}
				if d := Diff(old.(*ebbflowv1.Rollout), next.(*ebbflowv1.Rollout)); !d.HeaderChanged || len(d.Clusters) != 0 {
					t.Fatalf("Diff %s", deltaString(d))
				}
			})
		}
	}
	// A record is not part of the header.
	a := &ebbflowv1.Rollout{Id: "r", Waves: []*ebbflowv1.Wave{{Clusters: []*ebbflowv1.RolloutCluster{rec()}}}}
	b := proto.Clone(a).(*ebbflowv1.Rollout)
	b.Waves[0].Clusters[0].Reason = "changed"
	if !headersEqual(a, b) {
		t.Fatal("a record change counts as a header change")
	}
	if d := Diff(a, b); d.HeaderChanged || len(d.Clusters) != 1 {
		t.Fatalf("Diff %s", deltaString(d))
	}
	// Unknown fields travel with the header.
	u := proto.Clone(a).(*ebbflowv1.Rollout)
	u.ProtoReflect().SetUnknown(protoreflect.RawFields{0x98, 0x06, 0x01}) // field 99, varint 1
	if got := headerOf(u, fieldWaves); len(got.ProtoReflect().GetUnknown()) != 3 || headerEqual(a, u, fieldWaves) {
		t.Fatal("unknown fields are not part of the header")
	}
}
