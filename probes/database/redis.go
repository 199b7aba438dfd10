package database

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"

	"github.com/vigil-project/vigil/internal/confkit"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/internal/neterr"
)

// quietLogger drops go-redis's own log lines: every failure it would log
// is in the check's result already.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func init() {
	redis.SetLogger(quietLogger{})
	probes.Register(probes.Family{
		Type: "redis", Step: probes.StepDatabase,
		NewConfig: func() probes.Config {
			return &RedisConfig{Common: defaultCommon(), CanaryKeyPrefix: "vigil:canary:", CanaryTTL: model.Duration(time.Minute)}
		},
		New:     newRedis,
		Metrics: Metrics,
	})
}

// RedisConfig is the `redis:` section of a check. The DSN is a redis://
// or rediss:// URL ("redis://:password@host:6379/0").
type RedisConfig struct {
	Server `yaml:",inline"`
	Common `yaml:",inline"`
	// The canary is a key with this prefix and a TTL, so a run that dies
	// midway leaves nothing behind for long.
	CanaryKeyPrefix string         `yaml:"canary_key_prefix"`
	CanaryTTL       model.Duration `yaml:"canary_ttl"`
}

// Validate reports every problem as a FieldError.
func (c *RedisConfig) Validate() error {
	errs := append(c.Server.validate(), c.Common.validate()...)
	if c.CanaryKeyPrefix == "" {
		errs = append(errs, confkit.FieldErrorf("canary_key_prefix", "required"))
	}
	if c.CanaryTTL < model.Duration(time.Second) {
		errs = append(errs, confkit.FieldErrorf("canary_ttl", "must be at least 1s"))
	}
	return errors.Join(errs...)
}

// Redis is the redis check.
type Redis struct {
	cfg    *RedisConfig
	opts   *redis.Options
	target string
}

var _ probes.Prober = (*Redis)(nil)

func newRedis(c probes.Config, _ probes.Options) (probes.Prober, error) {
	cfg, ok := c.(*RedisConfig)
	if !ok {
		return nil, fmt.Errorf("redis: config of type %T", c)
	}
	secret, err := cfg.dsn()
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(secret.Reveal())
	if err != nil {
		return nil, errors.New(scrub(fmt.Sprintf("redis dsn: %v", err), secret.Reveal()))
	}
	host, _, _ := net.SplitHostPort(opts.Addr)
	tlsCfg, err := cfg.tls(host)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts.TLSConfig = tlsCfg
	}
	// One connection per run, no retries, deadlines from the check's ctx.
	opts.PoolSize, opts.MinIdleConns, opts.MaxRetries = 1, 0, -1
	opts.ContextTimeoutEnabled = true
	opts.DisableIdentity = true
	return &Redis{cfg: cfg, opts: opts, target: fmt.Sprintf("redis://%s/%d", opts.Addr, opts.DB)}, nil
}

// Probe runs connect, ping, canary, health and queries.
func (r *Redis) Probe(ctx context.Context, log *slog.Logger) probes.Result {
	var res probes.Result
	ph := &phases{res: &res}
	fail := func(what string, err error) probes.Result {
		ph.end()
		res.Reason = classifyRedis(err)
		if res.Reason == probes.ReasonError && strings.HasPrefix(what, "query ") {
			res.Reason = probes.ReasonQueryError
		}
		res.Message = scrub(fmt.Sprintf("%s: %s: %v", r.target, what, err), r.opts.Password)
		return res
	}
	// connect covers dial, TLS, AUTH and SELECT, which go-redis runs with
	// the first command; ping is then a bare round trip.
	ph.begin("connect")
	client := redis.NewClient(r.opts)
	defer client.Close()
	conn := client.Conn()
	defer conn.Close()
	if err := conn.Ping(ctx).Err(); err != nil {
		return fail("connect", err)
	}
	ph.begin("ping")
	if err := conn.Ping(ctx).Err(); err != nil {
		return fail("ping", err)
	}

	if !r.cfg.ReadOnly {
		token, payload := newToken()
		key := r.cfg.CanaryKeyPrefix + token
		ph.begin("canary_write")
		if err := conn.Set(ctx, key, payload, time.Duration(r.cfg.CanaryTTL)).Err(); err != nil {
			return fail("write canary", err)
		}
		ph.begin("canary_read")
		got, err := conn.Get(ctx, key).Result()
		if err != nil {
			return fail("read canary", err)
		}
		if got != payload {
			ph.end()
			res.Reason, res.Message = probes.ReasonCanaryMismatch, fmt.Sprintf("%s: read canary: wrote %q, read %q", r.target, payload, got)
			return res
		}
		ph.begin("canary_delete")
		if n, err := conn.Del(ctx, key).Result(); err != nil || n != 1 {
			if err == nil {
				err = errors.New("no key deleted")
			}
			return fail("delete canary", err)
		}
	}

	ph.begin("health")
	h, err := r.health(ctx, conn)
	if err != nil {
		return fail("server health", err)
	}
	var thresholdErr error
	if len(r.cfg.Queries) > 0 {
		ph.begin("queries")
		for _, q := range r.cfg.Queries {
			args := make([]any, 0, 4)
			for _, f := range strings.Fields(q.SQL) {
				args = append(args, f)
			}
			v, err := conn.Do(ctx, args...).Result()
			if err != nil {
				return fail("query "+q.Name, err)
			}
			f, err := replyNumber(v)
			if err != nil {
				ph.end()
				res.Reason, res.Message = probes.ReasonQueryError, fmt.Sprintf("%s: query %s: %v", r.target, q.Name, err)
				return res
			}
			res.AddValue("vigil_sql_value", f, probes.Label{Name: "query", Value: q.Name})
			if err := checkQueryValue(q, f); err != nil && thresholdErr == nil {
				thresholdErr = err
			}
		}
	}
	ph.end()
	conclude(&res, h, &r.cfg.Common, r.target, thresholdErr)
	return res
}

// health reads INFO replication and clients, and maxclients (CONFIG may be
// disabled on managed servers; the ratio is then left out).
func (r *Redis) health(ctx context.Context, conn *redis.Conn) (health, error) {
	var h health
	info, err := conn.Info(ctx, "replication", "clients").Result()
	if err != nil {
		return h, err
	}
	fields := parseInfo(info)
	h.used, _ = strconv.ParseFloat(fields["connected_clients"], 64)
	switch fields["role"] {
	case "slave", "replica":
		h.replica = true
		if fields["master_link_status"] != "up" {
			h.stopped = "link to " + fields["master_host"] + ":" + fields["master_port"] + " is " + fields["master_link_status"]
		}
		if v, err := strconv.ParseFloat(fields["master_last_io_seconds_ago"], 64); err == nil && v >= 0 {
			h.lag = &v
		}
	default:
		if v, err := strconv.ParseFloat(fields["connected_slaves"], 64); err == nil {
			h.replicas = &v
		}
	}
	if mc, err := conn.ConfigGet(ctx, "maxclients").Result(); err == nil {
		h.max, _ = strconv.ParseFloat(mc["maxclients"], 64)
	}
	return h, nil
}

func parseInfo(info string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(info, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), ":"); ok && !strings.HasPrefix(k, "#") {
			out[k] = v
		}
	}
	return out
}

func replyNumber(v any) (float64, error) {
	switch x := v.(type) {
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("reply %v is not a number", v)
}

// classifyRedis maps server error replies to reasons.
func classifyRedis(err error) probes.Reason {
	msg := err.Error()
	switch {
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"),
		strings.Contains(msg, "invalid password"), strings.Contains(msg, "without any password configured"),
		strings.Contains(msg, "invalid username-password pair"):
		return probes.ReasonAuthFailed
	case strings.Contains(msg, "max number of clients reached"):
		return probes.ReasonTooManyConnections
	case strings.HasPrefix(msg, "READONLY"), strings.HasPrefix(msg, "NOPERM"):
		return probes.ReasonReadonlyViolation
	case errors.Is(err, redis.Nil):
		return probes.ReasonCanaryMismatch
	}
	return neterr.Classify(err)
}
