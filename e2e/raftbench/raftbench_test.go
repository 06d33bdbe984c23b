package raftbench

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebbflow/ebbflow/e2e/kubebox"
	"github.com/ebbflow/ebbflow/e2e/process"
)

func TestQuantile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3} // unsorted on purpose
	for _, c := range []struct{ q, want float64 }{
		{0, 1}, {0.5, 3}, {0.25, 2}, {0.9, 4.6}, {0.99, 4.96}, {1, 5},
	} {
		if got := Quantile(xs, c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v, %v) = %v, want %v", xs, c.q, got, c.want)
		}
	}
	if xs[0] != 5 {
		t.Errorf("Quantile sorted its argument: %v", xs)
	}
	if got := Quantile(nil, 0.5); !math.IsNaN(got) {
		t.Errorf("Quantile(nil) = %v, want NaN", got)
	}
	if got := Quantile([]float64{7}, 0.99); got != 7 {
		t.Errorf("Quantile of one = %v, want 7", got)
	}
}

func TestRatio(t *testing.T) {
	if got := Ratio(3, 2); got != 1.5 {
		t.Errorf("Ratio(3, 2) = %v", got)
	}
	for _, c := range [][2]float64{{1, 0}, {math.NaN(), 1}, {1, math.NaN()}} {
		if got := Ratio(c[0], c[1]); !math.IsNaN(got) {
			t.Errorf("Ratio(%v, %v) = %v, want NaN", c[0], c[1], got)
		}
	}
}

func TestFormatParse(t *testing.T) {
	for _, c := range []struct {
		u    unit
		v    float64
		want string
	}{
		{perSecond, 1234.56, "1234.6/s"},
		{seconds, 0.00231, "2.31 ms"},
		{seconds, 0.000850, "850 µs"},
		{seconds, 1.2, "1.20 s"},
		{seconds, 12.34, "12.3 s"},
		{ratio, 0.834, "0.83x"},
		{count, 12, "12"},
		{seconds, math.NaN(), "n/a"},
	} {
		got := format(c.u, c.v)
		if got != c.want {
			t.Errorf("format(%v, %v) = %q, want %q", c.u, c.v, got, c.want)
		}
		back, err := ParseValue(got)
		if err != nil {
			t.Errorf("ParseValue(%q): %v", got, err)
			continue
		}
		if math.IsNaN(c.v) != math.IsNaN(back) || (!math.IsNaN(back) && math.Abs(back-c.v) > 0.01*math.Abs(c.v)) {
			t.Errorf("ParseValue(%q) = %v, want about %v", got, back, c.v)
		}
	}
}

func TestValues(t *testing.T) {
	tr := newTracker([]string{"bench-0", "bench-1"}, 256)
	seq, v := tr.start(1)
	if len(v) != 256 {
		t.Fatalf("value is %d bytes, want 256", len(v))
	}
	labels := toLabels(v)
	if len(labels) != 5 {
		t.Errorf("%d labels, want 5 (4 of 60 characters and one of 16)", len(labels))
	}
	for k, l := range labels {
		if len(l) > 63 {
			t.Errorf("label %s is %d characters", k, len(l))
		}
	}
	back, err := fromLabels(labels)
	if err != nil || !bytes.Equal(back, v) {
		t.Fatalf("fromLabels(toLabels(v)) = %q, %v; want %q", back, err, v)
	}
	if got, err := decodeSeq(back); err != nil || got != seq {
		t.Errorf("decodeSeq = %d, %v; want %d", got, err, seq)
	}

	// Key 1: write 1 acked, write 2 failed, write 3 acked.
	tr.done(1, seq, nil)
	s2, _ := tr.start(1)
	tr.done(1, s2, errors.New("timeout"))
	s3, _ := tr.start(1)
	tr.done(1, s3, nil)
	acked := tr.lastAcked(1)
	if acked != s3 {
		t.Fatalf("lastAcked = %d, want %d", acked, s3)
	}
	for _, c := range []struct {
		read       uint64
		late, lost bool
	}{{s3, false, false}, {s3 + 1, false, false}, {s2, true, false}, {seq, false, true}, {0, false, true}} {
		late, lost := tr.verdict(1, c.read, acked)
		if late != c.late || lost != c.lost {
			t.Errorf("verdict(read %d, acked %d) = late %v lost %v, want %v %v", c.read, acked, late, lost, c.late, c.lost)
		}
	}
}

func TestWritesTableParses(t *testing.T) {
	r := &WritesResult{Sides: []string{"ebbflow", "etcd", "ebbflow@HEAD~1"}, Clients: []int{1, 16}, Rounds: 2}
	for _, c := range r.Clients {
		for round := range 2 {
			for i, s := range r.Sides {
				f := float64(c) * float64(i+1) * float64(round+1)
				r.Runs = append(r.Runs, WriteRun{Side: s, Clients: c, Round: round + 1, Acked: int64(100 * f), Errors: int64(round),
					PerSecond: 100 * f, P50: 0.001 * f, P99: 0.002 * f})
			}
		}
	}
	figs := tableFigures(t, r)
	// 16 clients, ebbflow: per-second 1600 and 3200 over the rounds, median 2400; etcd twice that.
	if got := figs[16]["writes/s"]["ebbflow"]; math.Abs(got-2400) > 0.1 {
		t.Errorf("16 clients ebbflow writes/s = %v, want 2400", got)
	}
	if got := figs[16]["writes/s"]["ebbflow/etcd"]; math.Abs(got-0.5) > 0.005 {
		t.Errorf("ebbflow/etcd = %v, want 0.5", got)
	}
	if got := figs[1]["p99"]["ebbflow/ebbflow@HEAD~1"]; math.Abs(got-1.0/3) > 0.005 {
		t.Errorf("ebbflow/ref p99 = %v, want 0.33", got)
	}
	if got := figs[1]["errors"]["etcd"]; got != 1 {
		t.Errorf("errors = %v, want 1 (0 + 1 over the rounds)", got)
	}
}

// binaries are fleet-controller (RAFTBENCH_CONTROLLER_BIN, or built from the module) and
// etcd (RAFTBENCH_ETCD_BIN, or kubebox's; the test skips when kubebox has not built it).
func binaries(ctx context.Context, t *testing.T) (controller, etcd string) {
	t.Helper()
	etcd = os.Getenv("RAFTBENCH_ETCD_BIN")
	if etcd == "" {
		if !KubeboxBuilt() {
			t.Skip("no etcd binary: kubebox has not built etcd " + kubebox.EtcdVersion + " yet (make kubebox), and RAFTBENCH_ETCD_BIN is not set")
		}
		var err error
		if etcd, err = EtcdBinary(ctx, process.TestLog(t)); err != nil {
			t.Fatal(err)
		}
	}
	if controller = os.Getenv("RAFTBENCH_CONTROLLER_BIN"); controller != "" {
		return controller, etcd
	}
	controller, err := process.BuildController(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return controller, etcd
}

// TestWritesSmoke runs writes mode for one concurrency, one round of 2 s, against a real
// 3-node fleet-controller group and a real 3-member etcd cluster: both acknowledge writes and
// the table parses back.
func TestWritesSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	controller, etcd := binaries(ctx, t)
	dir := t.TempDir()
	sides, err := StartSides(ctx, dir, []SideSpec{
		{Label: EbbflowLabel, Bin: controller},
		{Label: EtcdLabel, Bin: etcd, Etcd: true},
	}, process.TestLog(t))
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	defer StopSides(sides)
	o := Options{Clients: []int{4}, Duration: 2 * time.Second, Rounds: 1, ValueSize: 256, Dir: dir, Log: process.TestLog(t)}
	res, err := Writes(ctx, o, sides)
	if err != nil {
		dumpLogs(t, dir)
		t.Fatal(err)
	}
	figs := tableFigures(t, res)
	for _, s := range []string{EbbflowLabel, EtcdLabel} {
		if got := figs[4]["writes/s"][s]; !(got > 0) {
			t.Errorf("%s: %v writes/s in the table, want > 0", s, got)
		}
		if got := figs[4]["p99"][s]; !(got > 0) {
			t.Errorf("%s: p99 %v in the table, want > 0", s, got)
		}
	}
	for _, run := range res.Runs {
		if run.Acked == 0 {
			t.Errorf("%s acknowledged no write (%d errors, last %q)", run.Side, run.Errors, run.LastError)
		}
	}
	if _, ok := figs[4]["writes/s"]["ebbflow/etcd"]; !ok {
		t.Errorf("no ebbflow/etcd ratio in the table")
	}
}

// tableFigures prints r's writes table to the test log and parses it back.
func tableFigures(t *testing.T, r *WritesResult) WritesFigures {
	t.Helper()
	var b bytes.Buffer
	if err := WritesTable(&b, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", b.String())
	figs, err := ParseWritesTable(&b)
	if err != nil {
		t.Fatal(err)
	}
	return figs
}

// dumpLogs logs the end of every node's log under dir.
func dumpLogs(t *testing.T, dir string) {
	t.Helper()
	process.DumpLogs(t, filepath.Join(dir, "*", "logs", "*.log"))
}
