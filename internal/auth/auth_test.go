package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokens(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tokens, err := NewTokens(strings.Repeat("k", 32), time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	good, exp, err := tokens.Issue(42)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("expires_at = %v", exp)
	}
	other, _ := NewTokens(strings.Repeat("x", 32), time.Hour, clock)
	forged, _, _ := other.Issue(42)
	later, _ := NewTokens(strings.Repeat("k", 32), time.Hour, func() time.Time { return now.Add(2 * time.Hour) })

	tests := []struct {
		name   string
		tokens *Tokens
		token  string
		want   int64
		err    error
	}{
		{"valid token gives its user", tokens, good, 42, nil},
		{"token signed with another secret is refused", tokens, forged, 0, ErrInvalidToken},
		{"expired token is refused", later, good, 0, ErrInvalidToken},
		{"tampered payload is refused", tokens, tamper(good), 0, ErrInvalidToken},
		{"garbage is refused", tokens, "not.a.token", 0, ErrInvalidToken},
		{"alg none is refused", tokens, "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiI0MiIsImlzcyI6Im9yZGVyc2FnYSJ9.", 0, ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.tokens.Verify(tt.token)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Verify = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

// tamper changes the subject inside the payload without re-signing.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[1])
	p[len(p)/2] ^= 1
	parts[1] = string(p)
	return strings.Join(parts, ".")
}

func TestShortSecretIsRefused(t *testing.T) {
	if _, err := NewTokens("short", time.Hour, nil); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func TestAdminTokenMatches(t *testing.T) {
	if !AdminTokenMatches("admin-token-0123456789", "admin-token-0123456789") {
		t.Fatal("equal tokens do not match")
	}
	if AdminTokenMatches("admin-token-0123456789", "admin-token-012345678") || AdminTokenMatches("", "") {
		t.Fatal("different or empty tokens match")
	}
}
