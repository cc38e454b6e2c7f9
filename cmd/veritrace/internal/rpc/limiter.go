package rpc

import (
	"math"
	"net"
	"sync"
	"time"
)

// Defaults of the failed-authentication limiter (docs/ACCESS.md).
const (
	// DefaultAuthFailureBurst failed authentications a peer may make at once.
	DefaultAuthFailureBurst = 20
	// DefaultAuthFailureRate failed authentications per second a peer
	// regains.
	DefaultAuthFailureRate = 1.0
	// maxLimiterPeers bounds the limiter's table; peers that find it full
	// share one bucket.
	maxLimiterPeers = 4096
)

// failureLimiter limits, per peer, the requests that fail authentication:
// a token bucket per peer, spent by each failure. A peer with an empty
// bucket is answered resource_exhausted with the time until its next
// token; requests that authenticate are never limited, so a peer cannot
// lock out others' valid keys (behind a proxy every client is one peer).
//
// The table is bounded: full buckets hold nothing a new one would not and
// are dropped when room is needed, and peers that still find the table
// full share one overflow bucket. Its state is per process, like any
// connection-level limit; the access log, not the limiter, is the record.
type failureLimiter struct {
	rate  float64 // tokens per second
	burst float64

	mu        sync.Mutex
	peers     map[string]*bucket
	overflow  bucket
	lastPrune time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newFailureLimiter(burst int, rate float64) *failureLimiter {
	if burst <= 0 {
		burst = DefaultAuthFailureBurst
	}
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		rate = DefaultAuthFailureRate
	}
	return &failureLimiter{rate: rate, burst: float64(burst), peers: map[string]*bucket{},
		overflow: bucket{tokens: float64(burst)}}
}

// refill adds the tokens earned since the bucket was last used.
func (b *bucket) refill(now time.Time, rate, burst float64) {
	if b.at.IsZero() {
		b.at = now
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(burst, b.tokens+d.Seconds()*rate)
		b.at = now
	}
}

// fail spends a token of the peer's bucket for a failed authentication. It
// returns 0 when the failure may be answered as such, else how long the
// peer should wait before its next try.
func (l *failureLimiter) fail(peer string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.peers[peer]
	if b == nil {
		if len(l.peers) >= maxLimiterPeers && now.Sub(l.lastPrune) >= time.Second {
			l.prune(now)
		}
		if len(l.peers) < maxLimiterPeers {
			b = &bucket{tokens: l.burst, at: now}
			l.peers[peer] = b
		} else {
			b = &l.overflow
		}
	}
	b.refill(now, l.rate, l.burst)
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return max(wait, time.Second)
}

// prune drops the buckets that have refilled; it runs at most once a
// second, so a full table of active peers costs one scan a second.
func (l *failureLimiter) prune(now time.Time) {
	l.lastPrune = now
	for p, b := range l.peers {
		b.refill(now, l.rate, l.burst)
		if b.tokens >= l.burst {
			delete(l.peers, p)
		}
	}
}

// peerKey is what limits and refusal bursts are kept per: the client's IP
// address without its port, and for IPv6 its /64 (one host usually holds a
// whole /64).
func peerKey(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return logText(host, maxPeerBytes)
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
