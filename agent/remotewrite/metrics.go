package remotewrite

import (
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Drop reasons of vigil_remote_write_samples_dropped_total.
const (
	reasonQueueFull = "queue_full"
	reasonRejected  = "rejected"
)

// metrics are the remotes' series. They live in a registry of their own
// (client_golang, for HELP texts, which VictoriaMetrics/metrics cannot
// write) rendered into the agent's /metrics by WritePrometheus.
type metrics struct {
	reg         *prometheus.Registry
	sent        *prometheus.CounterVec
	dropped     *prometheus.CounterVec
	retried     *prometheus.CounterVec
	snapshots   *prometheus.CounterVec
	queued      *prometheus.GaugeVec
	capacity    *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_remote_write_samples_total",
			Help: "Samples the remote-write receiver accepted (HTTP 2xx)."}, []string{"remote"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_remote_write_samples_dropped_total",
			Help: "Samples that will never reach the receiver, by reason: queue_full (the oldest samples, dropped when the queue held queue_config.capacity) or rejected (the receiver answered 4xx other than 408/429)."},
			[]string{"remote", "reason"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_remote_write_samples_retried_total",
			Help: "Samples in write requests that failed (network error, 5xx, 408, 429) and are sent again after a backoff."}, []string{"remote"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_remote_write_snapshots_total",
			Help: "Snapshots of every series queued for the remote (one per interval)."}, []string{"remote"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_remote_write_queue_samples",
			Help: "Samples waiting in the remote's in-memory queue, the batch being sent included."}, []string{"remote"}),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_remote_write_queue_capacity",
			Help: "Samples the remote's queue holds (queue_config.capacity); past it the oldest are dropped."}, []string{"remote"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vigil_remote_write_last_success_timestamp_seconds",
			Help: "Unix time of the remote's last accepted write request; 0 before the first."}, []string{"remote"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vigil_remote_write_request_duration_seconds",
			Help: "Duration of write requests, failed ones (timeouts, refused connections, error statuses) included.", Buckets: prometheus.DefBuckets}, []string{"remote"}),
	}
	m.reg.MustRegister(m.sent, m.dropped, m.retried, m.snapshots, m.queued, m.capacity, m.lastSuccess, m.duration)
	return m
}

// add creates a remote's series at zero, so rate() and alerts on drops see
// the first increment.
func (m *metrics) add(name string, capacity int) {
	m.sent.WithLabelValues(name)
	m.dropped.WithLabelValues(name, reasonQueueFull)
	m.dropped.WithLabelValues(name, reasonRejected)
	m.retried.WithLabelValues(name)
	m.snapshots.WithLabelValues(name)
	m.queued.WithLabelValues(name)
	m.capacity.WithLabelValues(name).Set(float64(capacity))
	m.lastSuccess.WithLabelValues(name)
	m.duration.WithLabelValues(name)
}

// remove drops a remote's series (it was removed from the config).
func (m *metrics) remove(name string) {
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.sent, m.dropped, m.retried, m.snapshots, m.queued, m.capacity, m.lastSuccess, m.duration} {
		v.DeletePartialMatch(prometheus.Labels{"remote": name})
	}
}

// write renders the series in the text format.
func (m *metrics) write(w io.Writer) {
	fams, err := m.reg.Gather()
	if err != nil {
		return
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		enc.Encode(f)
	}
}
