package remotewrite

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/golang/snappy"
	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/notify"
)

// newClient builds the remote's HTTP client with Prometheus's own client
// config: TLS, basic auth and bearer tokens, *_file credentials re-read
// on every request so a rotated file takes effect without a reload. The
// config's secrets are handed over here only; they are never logged.
func newClient(c config.RemoteWrite) (*http.Client, error) {
	hc := commoncfg.HTTPClientConfig{
		TLSConfig: commoncfg.TLSConfig{
			CAFile:             c.TLSConfig.CAFile,
			CertFile:           c.TLSConfig.CertFile,
			KeyFile:            c.TLSConfig.KeyFile,
			ServerName:         c.TLSConfig.ServerName,
			InsecureSkipVerify: c.TLSConfig.InsecureSkipVerify,
		},
		FollowRedirects: true,
		EnableHTTP2:     false, // as Prometheus's remote write
	}
	if b := c.BasicAuth; b != nil {
		hc.BasicAuth = &commoncfg.BasicAuth{Username: b.Username, Password: commoncfg.Secret(b.Password.Reveal()), PasswordFile: b.PasswordFile}
	}
	switch {
	case c.BearerToken.IsSet():
		hc.Authorization = &commoncfg.Authorization{Type: "Bearer", Credentials: commoncfg.Secret(c.BearerToken.Reveal())}
	case c.BearerTokenFile != "":
		hc.Authorization = &commoncfg.Authorization{Type: "Bearer", CredentialsFile: c.BearerTokenFile}
	}
	if err := hc.Validate(); err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	client, err := commoncfg.NewClientFromConfig(hc, "vigil_remote_write", commoncfg.WithUserAgent(userAgent()))
	if err != nil {
		return nil, fmt.Errorf("http client: %w", err)
	}
	return client, nil
}

func userAgent() string { return "vigil/" + version.Version }

// encoder builds snappy-compressed prompb.WriteRequests, reusing its
// buffers from batch to batch.
type encoder struct {
	req  prompb.WriteRequest
	pb   []byte
	out  []byte
	lbuf []prompb.Label
	sbuf []prompb.Sample
}

// encode renders a batch: one TimeSeries per sample, in queue order, so a
// series' samples reach the receiver oldest first.
func (e *encoder) encode(batch []sample) ([]byte, error) {
	e.req.Timeseries = e.req.Timeseries[:0]
	e.lbuf, e.sbuf = e.lbuf[:0], e.sbuf[:0]
	for _, s := range batch {
		s.lset.Range(func(l labels.Label) {
			e.lbuf = append(e.lbuf, prompb.Label{Name: l.Name, Value: l.Value})
		})
		e.sbuf = append(e.sbuf, prompb.Sample{Value: s.v, Timestamp: s.t})
		e.req.Timeseries = append(e.req.Timeseries, prompb.TimeSeries{})
	}
	// The label and sample slices are complete only now (append may move
	// them), so the series point into them in a second pass.
	li := 0
	for i, s := range batch {
		n := s.lset.Len()
		e.req.Timeseries[i].Labels = e.lbuf[li : li+n : li+n]
		e.req.Timeseries[i].Samples = e.sbuf[i : i+1 : i+1]
		li += n
	}
	size := e.req.Size()
	if cap(e.pb) < size {
		e.pb = make([]byte, size)
	}
	n, err := e.req.MarshalToSizedBuffer(e.pb[:size])
	if err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	e.out = snappy.Encode(e.out[:cap(e.out)], e.pb[size-n:size])
	return e.out, nil
}

// post sends one write request and classifies the answer as notify.Post
// does: nil on 2xx; a permanent error on other 4xx (the batch is dropped);
// anything else is retried, after Retry-After when the receiver sent one.
// Errors never quote the URL.
func (r *remote) post(ctx context.Context, body []byte, attempt int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(r.cfg.RemoteTimeout))
	defer cancel()
	h := http.Header{}
	for k, v := range r.cfg.Headers {
		h.Set(k, v)
	}
	h.Set("Content-Encoding", "snappy")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	h.Set("User-Agent", userAgent())
	if attempt > 0 {
		h.Set("Retry-Attempt", fmt.Sprint(attempt))
	}
	start := time.Now()
	_, err := notify.Post(ctx, r.client, r.cfg.URL, "application/x-protobuf", body, h)
	r.m.duration.WithLabelValues(r.cfg.Name).Observe(time.Since(start).Seconds())
	return err
}
