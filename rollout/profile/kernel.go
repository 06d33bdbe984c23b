package profile

import (
	"fmt"
	"strings"
)

// kernel is a parsed major.minor.patch kernel version.
type kernel struct{ major, minor, patch int }

func (k kernel) String() string { return fmt.Sprintf("%d.%d.%d", k.major, k.minor, k.patch) }

// atLeast reports whether k >= w.
func (k kernel) atLeast(w kernel) bool {
	if k.major != w.major {
		return k.major > w.major
	}
	if k.minor != w.minor {
		return k.minor > w.minor
	}
	return k.patch >= w.patch
}

// maxKernelPart bounds each number so that absurd input cannot overflow.
const maxKernelPart = 1_000_000

// ParseKernel reads the leading major.minor[.patch] of a kernel release string as
// status.nodeInfo.kernelVersion shows it, ignoring the distribution suffix:
//
//	"5.15.0-1051-aws"                 -> 5, 15, 0
//	"6.8.0-45-generic"                -> 6, 8, 0
//	"4.19.57"                         -> 4, 19, 57
//	"6.1.112-124.190.amzn2023.x86_64" -> 6, 1, 112
//	"5.10"                            -> 5, 10, 0
//
// A leading "v" and surrounding spaces are allowed. ok is false when there is no major.minor or
// a number is followed by something other than a separator ('-', '+', '_', '~', '.').
func ParseKernel(s string) (major, minor, patch int, ok bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "v")
	var nums [3]int
	n := 0
	i := 0
	for n < 3 {
		start := i
		v := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			v = v*10 + int(s[i]-'0')
			if v > maxKernelPart {
				return 0, 0, 0, false
			}
			i++
		}
		if i == start {
			break
		}
		nums[n] = v
		n++
		if i < len(s) && s[i] == '.' && n < 3 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
			i++
			continue
		}
		break
	}
	if n < 2 {
		return 0, 0, 0, false
	}
	if i < len(s) && !strings.ContainsRune("-+_~.", rune(s[i])) {
		return 0, 0, 0, false
	}
	return nums[0], nums[1], nums[2], true
}

// parseKernel is ParseKernel returning a kernel.
func parseKernel(s string) (kernel, bool) {
	a, b, c, ok := ParseKernel(s)
	return kernel{a, b, c}, ok
}

// kprKernelOK encodes Cilium's kube-proxy replacement minimum: 4.19.57, 5.1.16 or >= 5.2; the
// 5.0.y series (and 4.20.y, which lacks the fixes) does not work.
func kprKernelOK(k kernel) bool {
	switch {
	case k.major > 5:
		return true
	case k.major == 5:
		return k.minor >= 2 || (k.minor == 1 && k.patch >= 16)
	case k.major == 4:
		return k.minor == 19 && k.patch >= 57
	}
	return false
}

const kprKernelText = "4.19.57, 5.1.16 or >= 5.2 (5.0.y does not work)"
