package database

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vigil-project/vigil/internal/testenv"
	"github.com/vigil-project/vigil/probes"
)

const redisAddr = "127.0.0.1:6379"

func redisConfig(t *testing.T, dsn string, mutate func(*RedisConfig)) *RedisConfig {
	f, _ := probes.Lookup("redis")
	cfg := f.NewConfig().(*RedisConfig)
	cfg.DSNFile = dsnFile(t, dsn)
	if mutate != nil {
		mutate(cfg)
	}
	return cfg
}

func TestRedis(t *testing.T) {
	testenv.NeedService(t, "Redis", redisAddr)
	ctx := context.Background()
	admin := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer admin.Close()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "vigil_ro", "reset", "on", ">ro-pass-789", "~*", "+@read", "+ping", "+info", "+config|get", "+hello"},
		{"DEL", "vigil:test:queue"},
		{"RPUSH", "vigil:test:queue", "a", "b", "c"},
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatalf("%v: %v", cmd, err)
		}
	}
	defer admin.Del(ctx, "vigil:test:queue")
	const dsn = "redis://" + redisAddr + "/0"
	tests := []struct {
		name    string
		dsn     string
		mutate  func(*RedisConfig)
		timeout time.Duration
		reason  probes.Reason
		message string
	}{
		{"canary round trip and health", dsn, nil, 5 * time.Second, probes.ReasonNone, ""},
		{"queue length query", dsn, func(c *RedisConfig) {
			c.Queries = []Query{{Name: "sync_queue", SQL: "LLEN vigil:test:queue", Max: ptr(3)}}
		}, 5 * time.Second, probes.ReasonNone, ""},
		{"queue length over max", dsn, func(c *RedisConfig) {
			c.Queries = []Query{{Name: "sync_queue", SQL: "LLEN vigil:test:queue", Max: ptr(2)}}
		}, 5 * time.Second, probes.ReasonQueryThreshold, "query sync_queue = 3, above max 2"},
		{"query error", dsn, func(c *RedisConfig) {
			c.Queries = []Query{{Name: "bad", SQL: "NOSUCHCOMMAND x"}}
		}, 5 * time.Second, probes.ReasonQueryError, "unknown command"},
		{"read-only user", "redis://vigil_ro:ro-pass-789@" + redisAddr + "/0", nil, 5 * time.Second, probes.ReasonReadonlyViolation, "NOPERM"},
		{"read-only user with readonly: true", "redis://vigil_ro:ro-pass-789@" + redisAddr + "/0", func(c *RedisConfig) { c.ReadOnly = true }, 5 * time.Second, probes.ReasonNone, ""},
		{"wrong password", "redis://vigil_ro:wrong-pass-000@" + redisAddr + "/0", nil, 5 * time.Second, probes.ReasonAuthFailed, "WRONGPASS"},
		{"nothing listening", "redis://" + closedPort(t) + "/0", nil, 2 * time.Second, probes.ReasonConnectionRefused, "connect"},
		{"hanging listener", "redis://" + hangingListener(t) + "/0", nil, 500 * time.Millisecond, probes.ReasonTimeout, "connect"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			begin := time.Now()
			r := run(t, "redis", redisConfig(t, tt.dsn, tt.mutate), tt.timeout)
			if r.Success != (tt.reason == probes.ReasonNone) || r.Reason != tt.reason || !strings.Contains(r.Message, tt.message) {
				t.Fatalf("got success=%v reason=%q message=%q; want reason=%q containing %q", r.Success, r.Reason, r.Message, tt.reason, tt.message)
			}
			if strings.Contains(r.Message, "pass-") {
				t.Errorf("password in message: %s", r.Message)
			}
			if took := time.Since(begin); took > tt.timeout+time.Second {
				t.Errorf("run took %s with a %s timeout", took, tt.timeout)
			}
		})
	}
	r := run(t, "redis", redisConfig(t, dsn, nil), 5*time.Second)
	if got := phaseNames(r); got != "connect,ping,canary_write,canary_read,canary_delete,health" {
		t.Errorf("phases %s", got)
	}
	for _, name := range []string{"vigil_db_connections_used_ratio", "vigil_db_is_replica", "vigil_db_replicas"} {
		if _, ok := valueOf(r, name); !ok {
			t.Errorf("no %s", name)
		}
	}
	if keys, _ := admin.Keys(ctx, "vigil:canary:*").Result(); len(keys) != 0 {
		t.Errorf("canary keys left: %v", keys)
	}
}

// TestRedisReplication starts a real replica of the local Redis, then one
// whose primary does not exist.
func TestRedisReplication(t *testing.T) {
	testenv.NeedService(t, "Redis", redisAddr)
	bin := testenv.NeedBinary(t, "redis-server", "redis-server")
	start := func(primary string) string {
		port := strings.Split(closedPort(t), ":")[1]
		host, pport, _ := strings.Cut(primary, ":")
		cmd := exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", t.TempDir(), "--replicaof", host, pport)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return "127.0.0.1:" + port
	}
	replica := start(redisAddr)
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _ := rc.Info(ctx, "replication").Result()
		if strings.Contains(info, "master_link_status:up") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica did not sync:\n%s", info)
		}
		time.Sleep(50 * time.Millisecond)
	}

	r := run(t, "redis", redisConfig(t, "redis://"+replica+"/0", func(c *RedisConfig) { c.ReadOnly = true }), 5*time.Second)
	if !r.Success {
		t.Fatalf("replica: %q %s", r.Reason, r.Message)
	}
	if v, _ := valueOf(r, "vigil_db_is_replica"); v != 1 {
		t.Errorf("is_replica %v", v)
	}
	if lag, ok := valueOf(r, "vigil_db_replication_lag_seconds"); !ok || lag > 5 {
		t.Errorf("lag %v %v", lag, ok)
	}
	// Writing to a replica is refused: readonly_violation unless readonly.
	r = run(t, "redis", redisConfig(t, "redis://"+replica+"/0", nil), 5*time.Second)
	if r.Reason != probes.ReasonReadonlyViolation {
		t.Errorf("canary on a replica: %q %s", r.Reason, r.Message)
	}
	r = run(t, "redis", redisConfig(t, "redis://"+redisAddr+"/0", nil), 5*time.Second)
	if v, _ := valueOf(r, "vigil_db_replicas"); v < 1 {
		t.Errorf("primary reports %v replicas", v)
	}

	orphan := start(closedPort(t))
	// Until the new server listens and has tried its primary, the check
	// sees something else (connection refused).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = run(t, "redis", redisConfig(t, "redis://"+orphan+"/0", func(c *RedisConfig) { c.ReadOnly = true }), 5*time.Second)
		if r.Reason == probes.ReasonReplicationLag || time.Now().After(deadline) {
			break
		}
	}
	if r.Reason != probes.ReasonReplicationLag || !strings.Contains(r.Message, "replication stopped: link to 127.0.0.1") {
		t.Errorf("replica without a primary: %q %s", r.Reason, r.Message)
	}
}
