package profile

import "testing"

func TestParseKernel(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		a, b, c int
		ok      bool
	}{
		{name: "ubuntu aws", in: "5.15.0-1051-aws", a: 5, b: 15, c: 0, ok: true},
		{name: "ubuntu generic", in: "6.8.0-45-generic", a: 6, b: 8, c: 0, ok: true},
		{name: "plain", in: "4.19.57", a: 4, b: 19, c: 57, ok: true},
		{name: "ubuntu old", in: "5.4.0-150-generic", a: 5, b: 4, c: 0, ok: true},
		{name: "amazon linux", in: "6.1.112-124.190.amzn2023.x86_64", a: 6, b: 1, c: 112, ok: true},
		{name: "rhel", in: "4.18.0-553.el8_10.x86_64", a: 4, b: 18, c: 0, ok: true},
		{name: "two parts", in: "5.10", a: 5, b: 10, ok: true},
		{name: "plus suffix", in: "5.10.0+", a: 5, b: 10, ok: true},
		{name: "leading v and spaces", in: " v6.8.1 ", a: 6, b: 8, c: 1, ok: true},
		{name: "four parts", in: "5.4.0.1", a: 5, b: 4, ok: true},
		{name: "empty", in: ""},
		{name: "word", in: "unknown"},
		{name: "major only", in: "5"},
		{name: "trailing dot", in: "5."},
		{name: "leading dot", in: ".5.4"},
		{name: "letters after", in: "5.4abc"},
		{name: "huge", in: "99999999999999999999.1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b, c, ok := ParseKernel(tt.in)
			if ok != tt.ok || (ok && (a != tt.a || b != tt.b || c != tt.c)) {
				t.Fatalf("ParseKernel(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tt.in, a, b, c, ok, tt.a, tt.b, tt.c, tt.ok)
			}
		})
	}
}

func TestKPRKernel(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"4.19.56", false},
		{"4.19.57", true},
		{"4.19.200", true},
		{"4.18.0-553.el8_10.x86_64", false},
		{"4.20.1", false},
		{"5.0.21", false},
		{"5.1.15", false},
		{"5.1.16", true},
		{"5.2.0", true},
		{"5.4.0-150-generic", true},
		{"6.1.112-124.190.amzn2023.x86_64", true},
		{"3.10.0-1160.el7.x86_64", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			k, ok := parseKernel(tt.in)
			if !ok {
				t.Fatalf("parse %q failed", tt.in)
			}
			if got := kprKernelOK(k); got != tt.want {
				t.Fatalf("kprKernelOK(%s) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
