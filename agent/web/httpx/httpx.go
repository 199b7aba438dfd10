// Package httpx holds what the agent's HTTP handler packages share: the
// Router they register with (the web server implements it, attaching each
// route's access level), the authenticated user of a request, and JSON
// answers.
package httpx

import (
	"context"
	"encoding/json"
	"net"
	"net/http"

	"github.com/vigil-project/vigil/agent/client"
)

// Router registers a handler with the access level it needs: Open routes
// answer anyone, Read routes show state, Write routes change it.
type Router interface {
	Open(pattern string, h http.HandlerFunc)
	Read(pattern string, h http.HandlerFunc)
	Write(pattern string, h http.HandlerFunc)
}

type userKey struct{}

// WithUser records the authenticated user of a request.
func WithUser(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, userKey{}, user)
}

// User is the authenticated user of the request, "" without one.
func User(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// Actor names who made a request for journals and logs: the authenticated
// user, or the loopback client when no users are configured.
func Actor(r *http.Request) string {
	if u := User(r.Context()); u != "" {
		return u
	}
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	return "web@" + host
}

// WriteJSON answers with v as indented JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// WriteError answers with {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, client.Error{Error: msg})
}
