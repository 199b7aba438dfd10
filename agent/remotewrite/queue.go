package remotewrite

import (
	"sync"

	"github.com/prometheus/prometheus/model/labels"
)

// sample is one value of one series at a snapshot's time (ms).
type sample struct {
	lset labels.Labels
	t    int64
	v    float64
}

// queue is a remote's bounded buffer of samples in snapshot order: a ring
// of fixed capacity addressed by sequence numbers. The sender reads the
// oldest samples without removing them (peek) and removes them once the
// receiver answered (ack), so a batch being retried stays in the queue and
// counts against its capacity. A push into a full queue drops the oldest
// samples, the batch being sent included: a retry then sends what is
// left of it, and an ack counts only what was not dropped meanwhile, so
// every sample is counted once, as sent or as dropped.
type queue struct {
	mu         sync.Mutex
	buf        []sample
	head, tail uint64 // sequence numbers of the oldest and of the next sample
	// wake tells the sender that samples arrived.
	wake chan struct{}
}

func newQueue(capacity int) *queue {
	return &queue{buf: make([]sample, capacity), wake: make(chan struct{}, 1)}
}

// push appends samples and returns how many of the oldest were dropped to
// make room.
func (q *queue) push(ss []sample) (dropped int) {
	if len(ss) == 0 {
		return 0
	}
	q.mu.Lock()
	capacity := uint64(len(q.buf))
	if uint64(len(ss)) > capacity {
		// Only the newest fit; the rest are dropped before they are queued.
		dropped = len(ss) - int(capacity)
		ss = ss[dropped:]
	}
	for _, s := range ss {
		if q.tail-q.head == capacity {
			q.buf[q.head%capacity] = sample{}
			q.head++
			dropped++
		}
		q.buf[q.tail%capacity] = s
		q.tail++
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

// peek appends up to n of the oldest samples to into and returns them with
// the sequence number of the first.
func (q *queue) peek(n int, into []sample) ([]sample, uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	capacity := uint64(len(q.buf))
	end := min(q.tail, q.head+uint64(n))
	for seq := q.head; seq < end; seq++ {
		into = append(into, q.buf[seq%capacity])
	}
	return into, q.head
}

// ack removes the n samples from sequence start on that a receiver
// answered for, and returns how many of them were still queued (not
// dropped by a push meanwhile).
func (q *queue) ack(start uint64, n int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	capacity := uint64(len(q.buf))
	end := min(start+uint64(n), q.tail)
	if end <= q.head {
		return 0
	}
	removed := int(end - q.head)
	for ; q.head < end; q.head++ {
		q.buf[q.head%capacity] = sample{}
	}
	return removed
}

// oldest returns the number of queued samples and the time of the oldest
// (ms; 0 when empty).
func (q *queue) oldest() (n int, t int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.tail == q.head {
		return 0, 0
	}
	return int(q.tail - q.head), q.buf[q.head%uint64(len(q.buf))].t
}

// len is the number of queued samples.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.tail - q.head)
}

func (q *queue) capacity() int { return len(q.buf) }

// drain returns every queued sample, oldest first, and empties the queue
// (a reloaded remote hands its backlog to its successor).
func (q *queue) drain() []sample {
	q.mu.Lock()
	defer q.mu.Unlock()
	capacity := uint64(len(q.buf))
	out := make([]sample, 0, q.tail-q.head)
	for ; q.head < q.tail; q.head++ {
		out = append(out, q.buf[q.head%capacity])
		q.buf[q.head%capacity] = sample{}
	}
	return out
}
