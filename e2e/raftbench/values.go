package raftbench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
)

// seqDigits is how many leading characters of a value hold its sequence number.
const seqDigits = 16

// MinValueSize is the smallest --value-size: the sequence number and a little filler.
const MinValueSize = seqDigits + 4

// labelChunk is the length of one label value an ebbflow value is cut into (label values are
// at most 63 characters, alphanumerics first and last; see controller/validate.go).
const labelChunk = 60

const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"

// filler is n alphanumeric characters, different per key.
func filler(key string, n int) []byte {
	var seed uint64
	for _, c := range []byte(key) {
		seed = seed*131 + uint64(c)
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = alnum[r.IntN(len(alnum))]
	}
	return b
}

// encode is the value of a write: seq in seqDigits decimal digits, then the key's filler, size
// bytes in all.
func encode(seq uint64, fill []byte, size int) []byte {
	b := make([]byte, 0, size)
	b = fmt.Appendf(b, "%0*d", seqDigits, seq)
	return append(b, fill[:size-seqDigits]...)
}

// decodeSeq is the sequence number of a value.
func decodeSeq(v []byte) (uint64, error) {
	if len(v) < seqDigits {
		return 0, fmt.Errorf("raftbench: value %q is shorter than its sequence number", v)
	}
	return strconv.ParseUint(string(v[:seqDigits]), 10, 64)
}

// toLabels cuts a value into ebbflow cluster labels v0, v1, ... of labelChunk characters.
func toLabels(v []byte) map[string]string {
	m := make(map[string]string, (len(v)+labelChunk-1)/labelChunk)
	for i := 0; len(v) > 0; i++ {
		n := min(labelChunk, len(v))
		m["v"+strconv.Itoa(i)] = string(v[:n])
		v = v[n:]
	}
	return m
}

// fromLabels joins what toLabels cut.
func fromLabels(m map[string]string) ([]byte, error) {
	var v []byte
	for i := 0; ; i++ {
		s, ok := m["v"+strconv.Itoa(i)]
		if !ok {
			break
		}
		v = append(v, s...)
	}
	if len(v) == 0 {
		return nil, errors.New("raftbench: the cluster has no value labels")
	}
	return v, nil
}

// tracker numbers the writes of every key and remembers which were acknowledged.
type tracker struct {
	keys []string
	size int
	fill [][]byte

	mu     sync.Mutex
	next   []uint64              // the next write's sequence number, per key
	acked  []uint64              // the highest acknowledged sequence number, per key
	failed []map[uint64]struct{} // writes that returned an error (they may still apply)
}

func newTracker(keys []string, size int) *tracker {
	t := &tracker{keys: keys, size: size, next: make([]uint64, len(keys)), acked: make([]uint64, len(keys)),
		failed: make([]map[uint64]struct{}, len(keys))}
	for i, k := range keys {
		t.fill = append(t.fill, filler(k, size))
		t.next[i] = 1 // 0 is the value a key is prepared with
		t.failed[i] = map[uint64]struct{}{}
	}
	return t
}

// initial is key i's value before any write (sequence number 0).
func (t *tracker) initial(i int) []byte { return encode(0, t.fill[i], t.size) }

// start numbers key i's next write and returns its value.
func (t *tracker) start(i int) (uint64, []byte) {
	t.mu.Lock()
	seq := t.next[i]
	t.next[i]++
	t.mu.Unlock()
	return seq, encode(seq, t.fill[i], t.size)
}

// done records how key i's write seq ended.
func (t *tracker) done(i int, seq uint64, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.failed[i][seq] = struct{}{}
		return
	}
	t.acked[i] = max(t.acked[i], seq)
}

// lastAcked is key i's highest acknowledged sequence number.
func (t *tracker) lastAcked(i int) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked[i]
}

// verdict judges a linearizable read of key i that returned seq, when the last acknowledged
// write was acked: ok, an unacknowledged write that applied (legal: it was still pending),
// or a lost acknowledged write.
func (t *tracker) verdict(i int, seq, acked uint64) (late, lost bool) {
	if seq >= acked {
		return false, false
	}
	t.mu.Lock()
	_, wasFailed := t.failed[i][seq]
	t.mu.Unlock()
	return wasFailed, !wasFailed
}
