package bundle

import "container/heap"

// Entry files are compressed Huffman-only (see Writer.Prepare). Building a
// Huffman code for each file (a histogram, a sort, the code) took more time
// than coding its bytes, and entry files are alike: base64 and hex digits,
// JSON punctuation, and text. So they are coded with one code built once,
// entryCode, in a single deflate block with a dynamic Huffman code (RFC
// 1951 §3.2.7, BTYPE 10) that any inflater reads. A file that this code
// would compress to more than entryCodeMaxRatio of its size is compressed
// with a code of its own instead (huffmanOnly), so no file is coded
// much worse than it would be on its own.
//
// The encoding is the standard one: every file is a valid deflate stream,
// and the verifier (and the zip reader's CRC-32) check its bytes, not how
// they were coded.

// entryCodeMaxRatio: a file that entryCode would code in more than this
// share of its bits (header included) gets a code of its own.
const entryCodeMaxRatio = 0.80

// entryWeights are the relative frequencies entryCode is built for, per
// 10,000 bytes of entry files: hex digits (leaf hashes, inclusion proofs,
// version ids) and base64 (headers, where zero bytes make runs of 'A',
// payloads, salts) dominate, then JSON punctuation and the text of decoded
// payloads; every other byte has a code too. The figures are those of the
// entry files of the export benchmark (audit/bench_test.go), rounded.
func entryWeights() [257]int {
	var w [257]int
	for c := range 256 {
		w[c] = 1
	}
	add := func(chars string, n int) {
		for i := 0; i < len(chars); i++ {
			w[chars[i]] += n
		}
	}
	add("0123456789", 300)
	add("abcdef", 250)
	add("abcdefghijklmnopqrstuvwxyz", 60) // base64 and text
	add("etaoinsrhl", 40)
	add("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 50) // base64
	add("A", 600)
	add("\"", 560)
	add(",:", 150)
	add(" ", 85)
	add("{}=-", 30)
	add("/+_[]", 15)
	add(".\n", 6)
	w[256] = 1 // end of block
	return w
}

// staticCode is a deflate block header (BFINAL set) with its literal code:
// encoding a file is the header, each byte's code, and the end-of-block code.
type staticCode struct {
	header      []byte // whole bytes of the header
	headerTail  uint64 // its last bits, headerTailN of them
	headerTailN uint
	headerBits  int
	code        [257]uint16 // bit-reversed, ready to be written LSB first
	length      [257]uint8
}

var entryCode = newStaticCode(entryWeights())

// codeLengthOrder is the order in which the code length code's lengths are
// written (RFC 1951 §3.2.7).
var codeLengthOrder = [19]int{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

func newStaticCode(weights [257]int) *staticCode {
	sc := &staticCode{}
	lit := huffmanLengths(weights[:], 15)
	for i, l := range lit {
		sc.length[i] = uint8(l)
	}
	codes := canonicalCodes(lit)
	for i := range codes {
		sc.code[i] = reverseBits(codes[i], lit[i])
	}
	// The code lengths of 257 literal/length codes (0-255 and end of
	// block) and of one distance code, of length 1, which no symbol uses
	// (as the standard library writes Huffman-only blocks), run-length
	// coded with symbol 16 (repeat the previous length 3-6 times).
	seq := append(append([]int{}, lit...), 1)
	type clSym struct{ sym, extra int }
	var syms []clSym
	for i := 0; i < len(seq); {
		v := seq[i]
		syms = append(syms, clSym{v, 0})
		i++
		run := 0
		for i+run < len(seq) && seq[i+run] == v {
			run++
		}
		for run >= 3 {
			k := min(run, 6)
			syms = append(syms, clSym{16, k - 3})
			run -= k
			i += k
		}
	}
	clWeights := make([]int, 19)
	for _, s := range syms {
		clWeights[s.sym]++
	}
	clLengths := huffmanLengths(clWeights, 7)
	clCodes := canonicalCodes(clLengths)
	ncl := 19
	for ncl > 4 && clLengths[codeLengthOrder[ncl-1]] == 0 {
		ncl--
	}
	var w bitWriter
	w.bits(1, 1)             // BFINAL
	w.bits(2, 2)             // BTYPE 10: dynamic Huffman codes
	w.bits(257-257, 5)       // HLIT
	w.bits(1-1, 5)           // HDIST
	w.bits(uint64(ncl-4), 4) // HCLEN
	for _, s := range codeLengthOrder[:ncl] {
		w.bits(uint64(clLengths[s]), 3)
	}
	for _, s := range syms {
		w.bits(uint64(reverseBits(clCodes[s.sym], clLengths[s.sym])), uint(clLengths[s.sym]))
		if s.sym == 16 {
			w.bits(uint64(s.extra), 2)
		}
	}
	sc.headerBits = len(w.out)*8 + int(w.n)
	sc.header, sc.headerTail, sc.headerTailN = w.out, w.acc, w.n
	return sc
}

// bits reports how many bits coding b takes, header included.
func (sc *staticCode) bits(b []byte) int {
	n := sc.headerBits + int(sc.length[256])
	for _, c := range b {
		n += int(sc.length[c])
	}
	return n
}

// encode appends b, coded as one final deflate block, to out.
func (sc *staticCode) encode(out []byte, b []byte) []byte {
	w := bitWriter{out: append(out, sc.header...), acc: sc.headerTail, n: sc.headerTailN}
	for _, c := range b {
		w.acc |= uint64(sc.code[c]) << w.n
		if w.n += uint(sc.length[c]); w.n >= 48 {
			w.out = append(w.out, byte(w.acc), byte(w.acc>>8), byte(w.acc>>16), byte(w.acc>>24), byte(w.acc>>32), byte(w.acc>>40))
			w.acc >>= 48
			w.n -= 48
		}
	}
	w.bits(uint64(sc.code[256]), uint(sc.length[256]))
	for w.n > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n = uint(max(0, int(w.n)-8))
	}
	return w.out
}

// bitWriter writes bits least significant first (RFC 1951 §3.1.1).
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= v << w.n
	w.n += n
	for w.n >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// huffmanLengths returns the lengths of a Huffman code for the weights, at
// most limit bits: symbols of weight 0 get no code. While the code is too
// long, the weights are halved (rounding up, so none becomes 0) and it is
// built again.
func huffmanLengths(weights []int, limit int) []int {
	w := append([]int{}, weights...)
	for {
		lengths := buildLengths(w)
		longest := 0
		for _, l := range lengths {
			longest = max(longest, l)
		}
		if longest <= limit {
			return lengths
		}
		for i := range w {
			if w[i] > 0 {
				w[i] = (w[i] + 1) / 2
			}
		}
	}
}

type huffNode struct {
	weight, order int
	syms          []int
}

type huffHeap []huffNode

func (h huffHeap) Len() int { return len(h) }
func (h huffHeap) Less(i, j int) bool {
	if h[i].weight != h[j].weight {
		return h[i].weight < h[j].weight
	}
	return h[i].order < h[j].order
}
func (h huffHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *huffHeap) Push(x any)   { *h = append(*h, x.(huffNode)) }
func (h *huffHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func buildLengths(weights []int) []int {
	lengths := make([]int, len(weights))
	h := &huffHeap{}
	for s, w := range weights {
		if w > 0 {
			*h = append(*h, huffNode{w, s, []int{s}})
		}
	}
	if h.Len() == 1 {
		lengths[(*h)[0].syms[0]] = 1
		return lengths
	}
	heap.Init(h)
	order := len(weights)
	for h.Len() > 1 {
		a, b := heap.Pop(h).(huffNode), heap.Pop(h).(huffNode)
		for _, s := range a.syms {
			lengths[s]++
		}
		for _, s := range b.syms {
			lengths[s]++
		}
		heap.Push(h, huffNode{a.weight + b.weight, order, append(a.syms, b.syms...)})
		order++
	}
	return lengths
}

// canonicalCodes returns the canonical Huffman code of the lengths (RFC
// 1951 §3.2.2).
func canonicalCodes(lengths []int) []uint16 {
	var count [16]int
	for _, l := range lengths {
		if l > 0 {
			count[l]++
		}
	}
	var next [16]int
	code := 0
	for bits := 1; bits < 16; bits++ {
		code = (code + count[bits-1]) << 1
		next[bits] = code
	}
	codes := make([]uint16, len(lengths))
	for s, l := range lengths {
		if l > 0 {
			codes[s] = uint16(next[l])
			next[l]++
		}
	}
	return codes
}

func reverseBits(code uint16, n int) uint16 {
	var r uint16
	for i := 0; i < n; i++ {
		r = r<<1 | code&1
		code >>= 1
	}
	return r
}
