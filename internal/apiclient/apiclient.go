// Package apiclient calls the ordersaga API over HTTP as the mini-program
// and the shop's admin do — JSON in, a bearer token, JSON out — for the
// harnesses that drive the real stack (internal/chaos, internal/bench).
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// maxAnswer bounds the body read of one answer (the API's largest, a page
// of orders, is far below it).
const maxAnswer = 1 << 20

// Do sends method url with body as JSON (nil: no body) and the bearer token
// ("" = none), and returns the status and the body read. An error is a
// transport error: every HTTP status is an answer.
func Do(ctx context.Context, hc *http.Client, method, url, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, fmt.Errorf("apiclient: encode %s %s: %w", method, url, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}
