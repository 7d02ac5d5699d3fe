// Package reconcile is `ordersaga reconcile`: it asks the API to reconcile
// a bill date (POST /v1/admin/reconciliations), waits for the run to end,
// and prints the date's report as tables — what differs between WeChat
// Pay's trade bill and the shop, and apart from it what is expected (stray
// payments, items in another day's bill).
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"ordersaga/internal/apiclient"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// Report is GET /v1/admin/reconciliations/:date, every page of drift read.
type Report struct {
	BillDate string `json:"bill_date"`
	Report   *struct {
		Run             store.ReconcileRun `json:"run"`
		DriftByKind     map[string]int64   `json:"drift_by_kind"`
		ExplainedByKind map[string]int64   `json:"explained_by_kind"`
	} `json:"report"`
	Drifts    []store.ReconcileDrift `json:"drifts"`
	LatestRun *store.ReconcileRun    `json:"latest_run"`
	Workflow  *struct {
		WorkflowID string `json:"workflow_id"`
		RunID      string `json:"run_id"`
		Status     string `json:"status"`
	} `json:"workflow"`
	NextCursor string `json:"next_cursor"`
}

// ErrDrift is returned (after the report is printed) when the report has
// unexplained drift, so that scripts can tell.
var ErrDrift = errors.New("unexplained drift")

// Client calls the reconciliation endpoints of the API.
type Client struct {
	BaseURL string // http://127.0.0.1:8080
	Token   string // ADMIN_TOKEN
	HTTP    *http.Client
	// Progress, when set, hears Wait say why an attempt failed while the
	// run is retried (a bad bill is downloaded again for minutes).
	Progress io.Writer
}

func (c *Client) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	status, b, err := apiclient.Do(ctx, hc, method, strings.TrimRight(c.BaseURL, "/")+path, c.Token, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
			return nil, fmt.Errorf("%s %s: %d %s: %s", method, path, status, e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("%s %s: HTTP %d: %.200s", method, path, status, b)
	}
	return b, nil
}

// Start asks for (another) reconciliation of date.
func (c *Client) Start(ctx context.Context, date string) error {
	_, err := c.call(ctx, http.MethodPost, "/v1/admin/reconciliations", map[string]string{"bill_date": date})
	return err
}

// Get reads date's report, every page of it.
func (c *Client) Get(ctx context.Context, date string) (*Report, error) {
	var all *Report
	cursor := ""
	for {
		path := "/v1/admin/reconciliations/" + url.PathEscape(date) + "?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		b, err := c.call(ctx, http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		var page Report
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		if all == nil {
			all = &page
		} else {
			all.Drifts = append(all.Drifts, page.Drifts...)
		}
		if page.NextCursor == "" {
			all.NextCursor = ""
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// Running reports whether the date's reconciliation is still going.
func (r *Report) Running() bool {
	return (r.Workflow != nil && r.Workflow.Status == "RUNNING") ||
		(r.LatestRun != nil && r.LatestRun.Status == store.RunRunning && r.Workflow == nil)
}

// Wait starts (unless only showing) the reconciliation of date and waits
// until it has ended, polling every poll.
func (c *Client) Wait(ctx context.Context, date string, start bool, poll time.Duration) (*Report, error) {
	if start {
		if err := c.Start(ctx, date); err != nil {
			return nil, err
		}
	}
	said := ""
	for {
		r, err := c.Get(ctx, date)
		if err != nil {
			return nil, err
		}
		if !r.Running() {
			return r, nil
		}
		if l := r.LatestRun; c.Progress != nil && l != nil && l.Status == store.RunRunning && l.Error != "" && l.Error != said {
			said = l.Error
			fmt.Fprintf(c.Progress, "reconciliation of %s: an attempt failed, retrying (attempt %d): %s\n", date, l.Attempt, l.Error)
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("the reconciliation of %s is still running: %w", date, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// RunCommand is `ordersaga reconcile`. getenv gives the defaults of -api
// (HTTP_ADDR) and -token (ADMIN_TOKEN).
func RunCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: ordersaga reconcile [flags]

Reconciles WeChat Pay's trade bill of a day (Beijing time) with the shop's
payments and refunds through the API, waits for it, and prints the report:
the drift, then what is listed apart as expected. Exits 1 when there is
unexplained drift or the run failed.

flags:
`)
		fs.PrintDefaults()
	}
	api := "http://127.0.0.1:8080"
	if addr := strings.TrimSpace(getenv("HTTP_ADDR")); addr != "" {
		if strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1" + addr
		}
		api = "http://" + addr
	}
	date := fs.String("date", workflows.BillDateBefore(time.Now()), "bill date yyyy-MM-dd (default yesterday, Beijing time)")
	fs.StringVar(&api, "api", api, "the API's base URL (default from HTTP_ADDR)")
	token := fs.String("token", getenv("ADMIN_TOKEN"), "admin token (default ADMIN_TOKEN)")
	show := fs.Bool("show", false, "print the stored report; do not reconcile again")
	wait := fs.Duration("wait", 10*time.Minute, "how long to wait for the run")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if !workflows.ValidBillDate(*date) {
		return fmt.Errorf("-date %q: want yyyy-MM-dd", *date)
	}
	if *token == "" {
		return errors.New("no admin token: set ADMIN_TOKEN or -token")
	}
	wctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	c := &Client{BaseURL: api, Token: *token, Progress: stderr}
	r, err := c.Wait(wctx, *date, !*show, 500*time.Millisecond)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		WriteText(stdout, r)
	}
	return r.verdict()
}

// verdict is nil for a report without drift whose latest run completed.
func (r *Report) verdict() error {
	if r.LatestRun != nil && r.LatestRun.Status == store.RunFailed {
		return fmt.Errorf("the latest run of %s failed: %s", r.BillDate, r.LatestRun.Error)
	}
	if r.Report == nil {
		return fmt.Errorf("%s has no report", r.BillDate)
	}
	if n := r.Report.Run.Drift; n > 0 {
		return fmt.Errorf("%s: %d %w", r.BillDate, n, ErrDrift)
	}
	return nil
}
