package raftbench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Quantile is the q-quantile of xs (any order; NaN when empty) by linear interpolation between
// ranks, as e2e/fleetsim computes it.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo >= len(s)-1 {
		return s[len(s)-1]
	}
	if lo < 0 {
		return s[0]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

// Ratio is a/b, or NaN when either is NaN or b is 0.
func Ratio(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

// unit says how a figure prints.
type unit int

const (
	count unit = iota
	seconds
	perSecond
	ratio
)

func format(u unit, v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	switch u {
	case seconds:
		switch a := math.Abs(v); {
		case a >= 10:
			return fmt.Sprintf("%.1f s", v)
		case a >= 1:
			return fmt.Sprintf("%.2f s", v)
		case a >= 0.001:
			return fmt.Sprintf("%.2f ms", v*1e3)
		}
		return fmt.Sprintf("%.0f µs", v*1e6)
	case perSecond:
		return fmt.Sprintf("%.1f/s", v)
	case ratio:
		if v >= 0.01 && v < 1000 {
			return fmt.Sprintf("%.2fx", v)
		}
		return fmt.Sprintf("%.3gx", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// ParseValue reads back a figure as format printed it: "1234.5/s", "2.31 ms", "1.20 s",
// "850 µs", "0.83x", "12"; "n/a" is NaN. Times are in seconds.
func ParseValue(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "n/a" {
		return math.NaN(), nil
	}
	mult := 1.0
	for _, suf := range []struct {
		s string
		m float64
	}{{"/s", 1}, {" ms", 1e-3}, {" µs", 1e-6}, {" s", 1}, {"x", 1}} {
		if rest, ok := strings.CutSuffix(s, suf.s); ok {
			s, mult = rest, suf.m
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("raftbench: unreadable figure %q", s)
	}
	return v * mult, nil
}

// ratioColumns are the ratio columns: the first side (ebbflow) over each other side.
func ratioColumns(sides []string) []string {
	var out []string
	for _, s := range sides[min(1, len(sides)):] {
		out = append(out, sides[0]+"/"+s)
	}
	return out
}

// writeFigures are the rows of the writes table for each concurrency.
var writeFigures = []struct {
	name string
	unit unit
	get  func(WriteRun) float64
	sum  bool
}{
	{"writes/s", perSecond, func(r WriteRun) float64 { return r.PerSecond }, false},
	{"p50", seconds, func(r WriteRun) float64 { return r.P50 }, false},
	{"p99", seconds, func(r WriteRun) float64 { return r.P99 }, false},
	{"errors", count, func(r WriteRun) float64 { return float64(r.Errors) }, true},
}

// WritesTable prints writes mode's figures per concurrency: each side's median over rounds (the
// sum for errors) and the ratios of the first side to each other one.
func WritesTable(w io.Writer, r *WritesResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cols := append([]string{"clients", "figure"}, r.Sides...)
	cols = append(cols, ratioColumns(r.Sides)...)
	fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	for _, c := range r.Clients {
		for _, f := range writeFigures {
			get := r.median
			if f.sum {
				get = r.total
			}
			line := []string{strconv.Itoa(c), f.name}
			var vs []float64
			for _, s := range r.Sides {
				v := get(s, c, f.get)
				vs = append(vs, v)
				line = append(line, format(f.unit, v))
			}
			for _, v := range vs[min(1, len(vs)):] {
				if f.sum {
					line = append(line, "")
					continue
				}
				line = append(line, format(ratio, Ratio(vs[0], v)))
			}
			fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
		}
	}
	return tw.Flush()
}

// WritesFigures are a parsed writes table: concurrency, figure ("writes/s", "p50", "p99",
// "errors"), column (a side or a ratio such as "ebbflow/etcd") to the value (seconds for times).
type WritesFigures map[int]map[string]map[string]float64

var columnGap = regexp.MustCompile(`\s{2,}`)

// ParseWritesTable reads the table WritesTable printed (from its header line to the first line
// that is not a row of it).
func ParseWritesTable(rd io.Reader) (WritesFigures, error) {
	sc := bufio.NewScanner(rd)
	var cols []string
	out := WritesFigures{}
	for sc.Scan() {
		fields := columnGap.Split(strings.TrimSpace(sc.Text()), -1)
		if cols == nil {
			if len(fields) >= 3 && fields[0] == "clients" && fields[1] == "figure" {
				cols = fields
			}
			continue
		}
		c, err := strconv.Atoi(fields[0])
		if err != nil || len(fields) < 3 {
			break
		}
		fig := fields[1]
		if out[c] == nil {
			out[c] = map[string]map[string]float64{}
		}
		out[c][fig] = map[string]float64{}
		for i, f := range fields[2:] {
			if 2+i >= len(cols) {
				return nil, fmt.Errorf("raftbench: row %q has more columns than the header", sc.Text())
			}
			v, err := ParseValue(f)
			if err != nil {
				return nil, err
			}
			out[c][fig][cols[2+i]] = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cols == nil {
		return nil, fmt.Errorf("raftbench: no writes table (a header line starting \"clients  figure\")")
	}
	return out, nil
}

// failoverFigures are the rows of the failover table, computed from one side's kills.
var failoverFigures = []struct {
	name  string
	unit  unit
	get   func(ks []Kill, final Check) float64
	ratio bool
}{
	{"kills", count, func(ks []Kill, _ Check) float64 { return float64(len(ks)) }, false},
	{"failover p50", seconds, failoverQ(0.5), true},
	{"failover p90", seconds, failoverQ(0.9), true},
	{"failover p99", seconds, failoverQ(0.99), true},
	{"failover max", seconds, failoverQ(1), true},
	{"kills with no write acknowledged in time", count, func(ks []Kill, _ Check) float64 {
		n := 0
		for _, k := range ks {
			if math.IsNaN(k.Failover) {
				n++
			}
		}
		return float64(n)
	}, false},
	{"failed writes per kill (median)", count, func(ks []Kill, _ Check) float64 {
		var xs []float64
		for _, k := range ks {
			xs = append(xs, float64(k.FailedWrites))
		}
		return Quantile(xs, 0.5)
	}, false},
	{"restart -> healthy p50", seconds, func(ks []Kill, _ Check) float64 {
		var xs []float64
		for _, k := range ks {
			if !math.IsNaN(k.Healthy) {
				xs = append(xs, k.Healthy)
			}
		}
		return Quantile(xs, 0.5)
	}, true},
	{"lost acknowledged writes", count, func(ks []Kill, final Check) float64 {
		return float64(checks(ks, final).Lost)
	}, false},
	{"unacknowledged writes applied late", count, func(ks []Kill, final Check) float64 {
		return float64(checks(ks, final).Late)
	}, false},
	{"read errors", count, func(ks []Kill, final Check) float64 {
		return float64(checks(ks, final).ReadErrors)
	}, false},
}

func failoverQ(q float64) func([]Kill, Check) float64 {
	return func(ks []Kill, _ Check) float64 {
		var xs []float64
		for _, k := range ks {
			if !math.IsNaN(k.Failover) {
				xs = append(xs, k.Failover)
			}
		}
		return Quantile(xs, q)
	}
}

// checks adds up the checks after every kill and the final one.
func checks(ks []Kill, final Check) Check {
	var c Check
	for _, k := range ks {
		c.add(k.Check)
	}
	c.add(final)
	return c
}

// FailoverTable prints failover mode's figures per side and the ratios of the first side's to
// each other side's times.
func FailoverTable(w io.Writer, r *FailoverResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cols := append([]string{"figure"}, r.Sides...)
	cols = append(cols, ratioColumns(r.Sides)...)
	fmt.Fprintln(tw, strings.Join(cols, "\t")+"\t")
	bySide := map[string][]Kill{}
	for _, k := range r.Kills {
		bySide[k.Side] = append(bySide[k.Side], k)
	}
	for _, f := range failoverFigures {
		line := []string{f.name}
		var vs []float64
		for _, s := range r.Sides {
			v := f.get(bySide[s], r.Final[s])
			vs = append(vs, v)
			line = append(line, format(f.unit, v))
		}
		for _, v := range vs[min(1, len(vs)):] {
			if !f.ratio {
				line = append(line, "")
				continue
			}
			line = append(line, format(ratio, Ratio(vs[0], v)))
		}
		fmt.Fprintln(tw, strings.Join(line, "\t")+"\t")
	}
	return tw.Flush()
}

// Report is what --out writes: both modes' results, NaN figures as -1.
type Report struct {
	Sides    map[string]string `json:"sides"`
	Writes   *WritesResult     `json:"writes,omitempty"`
	Failover *FailoverResult   `json:"failover,omitempty"`
}

// JSON is the report indented, with every NaN figure (none measured) as -1.
func (r Report) JSON() ([]byte, error) {
	if r.Writes != nil {
		w := *r.Writes
		w.Runs = withoutNaN(w.Runs, func(run *WriteRun) []*float64 {
			return []*float64{&run.PerSecond, &run.P50, &run.P99, &run.Seconds}
		})
		r.Writes = &w
	}
	if r.Failover != nil {
		f := *r.Failover
		f.Kills = withoutNaN(f.Kills, func(k *Kill) []*float64 { return []*float64{&k.Failover, &k.Healthy} })
		r.Failover = &f
	}
	return json.MarshalIndent(r, "", "  ")
}

// withoutNaN is a copy of xs with each one's figures that are NaN or infinite set to -1.
func withoutNaN[T any](xs []T, figures func(*T) []*float64) []T {
	xs = slices.Clone(xs)
	for i := range xs {
		for _, v := range figures(&xs[i]) {
			if math.IsNaN(*v) || math.IsInf(*v, 0) {
				*v = -1
			}
		}
	}
	return xs
}
