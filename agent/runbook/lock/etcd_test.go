package lock

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

func TestEtcdConfigNormalize(t *testing.T) {
	ep := []string{"http://127.0.0.1:2379"}
	tests := []struct {
		name    string
		cfg     EtcdConfig
		want    EtcdConfig
		wantErr string
	}{
		{"defaults", EtcdConfig{Endpoints: ep},
			EtcdConfig{Endpoints: ep, Prefix: DefaultEtcdPrefix, TTL: DefaultEtcdTTL, DialTimeout: DefaultEtcdDialTimeout}, ""},
		{"prefix gets its slash", EtcdConfig{Endpoints: ep, Prefix: "/dc1", TTL: 5 * time.Second, DialTimeout: time.Second},
			EtcdConfig{Endpoints: ep, Prefix: "/dc1/", TTL: 5 * time.Second, DialTimeout: time.Second}, ""},
		{"no endpoints", EtcdConfig{}, EtcdConfig{}, "at least one endpoint"},
		{"blank endpoint", EtcdConfig{Endpoints: []string{" "}}, EtcdConfig{}, "empty endpoint"},
		{"short ttl", EtcdConfig{Endpoints: ep, TTL: 4 * time.Second}, EtcdConfig{}, "below the minimum 5s"},
		{"negative ttl", EtcdConfig{Endpoints: ep, TTL: -time.Second}, EtcdConfig{}, "below the minimum"},
		{"negative dial timeout", EtcdConfig{Endpoints: ep, DialTimeout: -1}, EtcdConfig{}, "negative dial timeout"},
		{"password alone", EtcdConfig{Endpoints: ep, Password: "x"}, EtcdConfig{}, "without username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.cfg.normalize()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestNewEtcdUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, _, err = NewEtcd(ctx, EtcdConfig{Endpoints: []string{"http://" + addr}})
	if err == nil {
		t.Fatal("NewEtcd succeeded without a server")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("NewEtcd took %s, ctx should have bounded it", d)
	}
	if !strings.Contains(err.Error(), "etcd:") {
		t.Errorf("error %q does not say it is about etcd", err)
	}
}
