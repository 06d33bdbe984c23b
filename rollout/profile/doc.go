// Package profile knows Cilium: it validates tuning profiles, computes each phase's Helm values
// and expected cilium-config, and runs preflight against a cluster's inventory.
//
// Everything here is pure: no I/O, no clock. The facts it encodes (Helm keys, cilium-config keys,
// kernel minimums, incompatibilities, native-XDP drivers) come from Cilium's chart and docs for
// chart 1.16 to 1.18.
//
// A profile has four phases, applied in order: baseline, l7, kpr, xdp. Each phase's values are
// laid on top of the earlier phases' values (later wins), and every cross-field rule is checked
// against those cumulative values at each phase, so a rule broken by the kpr phase is reported
// at spec.kpr.values.<field>.
package profile
