package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/store"
	"ordersaga/internal/tradebill"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

// Reconciliation limits.
const (
	// stageRows bill rows go to the database at a time: the memory a day
	// of any size costs while it is read.
	stageRows = 1000
	// maxResolveQueries: the shop's payments and refunds the bill does not
	// list are asked about one by one (they may be in another day's bill);
	// past this many (something is badly wrong) the rest are reported as
	// they are, without asking.
	maxResolveQueries = 500
	// heartbeatEvery paces the heartbeats of a run, whatever it is doing:
	// one statement of a large day's comparison takes seconds, and silence
	// for the heartbeat timeout (2 min) would mean a dead worker.
	heartbeatEvery = 10 * time.Second
	// WeChat's codes for "no such thing" when asked about one item.
	codeResourceNotExists = "RESOURCE_NOT_EXISTS"
)

// chinaTime is Beijing time: bill dates are its days.
var chinaTime = time.FixedZone("CST", 8*3600)

// billDay is the bill date as instants: [00:00, 24:00) Beijing time.
func billDay(date string) (store.DayWindow, error) {
	d, err := time.ParseInLocation("2006-01-02", date, chinaTime)
	if err != nil {
		return store.DayWindow{}, err
	}
	return store.DayWindow{From: d.UTC(), To: d.AddDate(0, 0, 1).UTC()}, nil
}

// StartReconcileRun records the run of a reconciliation workflow run (once).
func (a *Activities) StartReconcileRun(ctx context.Context, in workflows.StartReconcileInput) (workflows.ReconcileRunRef, error) {
	run, err := a.Store.StartReconcileRun(ctx, in.BillDate, in.WorkflowID, in.WorkflowRunID)
	if err != nil {
		return workflows.ReconcileRunRef{}, businessError(err)
	}
	return workflows.ReconcileRunRef{RunID: run.ID}, nil
}

// FailReconcileRun ends a run without a report, keeping the reason.
func (a *Activities) FailReconcileRun(ctx context.Context, in workflows.FailReconcileInput) error {
	run, err := a.Store.FailReconcileRun(ctx, in.RunID, in.Reason)
	if err != nil {
		return businessError(err)
	}
	a.reconcileLog(ctx, run.BillDate).Error("reconciliation run failed: no report", "run_id", run.ID, "reason", in.Reason)
	return nil
}

func (a *Activities) reconcileLog(ctx context.Context, billDate string) *slog.Logger {
	return a.logWith(ctx, "bill_date", billDate)
}

// badBill is the retryable failure of a download that is not the bill
// WeChat described, or not a well-formed bill: the next attempt downloads
// it again; the last one fails the run with this reason.
func badBill(date string, err error) error {
	return temporal.NewApplicationErrorWithCause(fmt.Sprintf("bill of %s: %v", date, err), workflows.ErrTypeBadBill, err)
}

// ReconcileBill does one attempt at a run: asks WeChat for the bill (if it
// is not ready, says so and changes nothing), downloads it, reads it as it
// arrives — checking each row, the summary and, at the end, the SHA-1 —
// while staging its rows in the database, compares them with the shop's
// payments and refunds of the day, asks WeChat about what the shop has and
// the bill lacks, and makes the run the date's report. A retry starts
// again from nothing; a run already complete is returned as it is.
func (a *Activities) ReconcileBill(ctx context.Context, in workflows.ReconcileBillInput) (_ workflows.ReconcileSummary, err error) {
	log := a.reconcileLog(ctx, in.BillDate).With("run_id", in.RunID)
	day, err := billDay(in.BillDate)
	if err != nil {
		return workflows.ReconcileSummary{}, nonRetryable(workflows.ErrTypeInvalidOrder, "bill date %q: %v", in.BillDate, err)
	}
	run, err := a.Store.GetReconcileRun(ctx, in.RunID)
	if err != nil {
		return workflows.ReconcileSummary{}, businessError(err)
	}
	if run.Status == store.RunComplete {
		return a.runSummary(ctx, run) // an earlier attempt finished; its answer was lost
	}
	attempt, err := a.Store.ResetReconcileRun(ctx, in.RunID)
	if err != nil {
		if errors.Is(err, store.ErrRunNotRunning) {
			return workflows.ReconcileSummary{}, nonRetryable(workflows.ErrTypeStatusConflict, "%v", err)
		}
		return workflows.ReconcileSummary{}, businessError(err)
	}
	log = log.With("run_attempt", attempt)
	defer func() {
		if err != nil {
			a.noteAttemptFailure(ctx, log, in.RunID, attempt, err)
		}
	}()
	started := time.Now()
	beat := startHeartbeat(ctx, "asking WeChat for the bill")
	defer beat.stop()

	totals := store.BillTotals{State: store.BillReady}
	tb, err := a.Pay.TradeBillGzip(ctx, in.BillDate)
	switch code := wxpay.Code(err); {
	case err == nil:
		if totals, err = a.stageBill(ctx, log, in, attempt, tb, beat); err != nil {
			return workflows.ReconcileSummary{}, err
		}
	case code == wxpay.CodeStatementCreating:
		log.Info("WeChat is still making the bill")
		if err := a.Store.SetReconcileBillState(ctx, in.RunID, store.BillCreating); err != nil {
			return workflows.ReconcileSummary{}, businessError(err)
		}
		return workflows.ReconcileSummary{RunID: in.RunID, BillDate: in.BillDate, NotReady: true}, nil
	case code == wxpay.CodeNoStatement:
		log.Info("WeChat has no bill for the day: no trade")
		totals = store.BillTotals{State: store.BillNone}
	default:
		return workflows.ReconcileSummary{}, wechatError("trade bill of "+in.BillDate, err)
	}
	staged := time.Since(started)

	beat.say(fmt.Sprintf("comparing %d bill rows with the shop", totals.Rows))
	if err := a.Store.CompareReconcileRun(ctx, in.RunID, attempt, day, workflows.StrayRefundNo("")); err != nil {
		return workflows.ReconcileSummary{}, err
	}
	if err := a.resolveShopSide(ctx, in, attempt, day, beat); err != nil {
		return workflows.ReconcileSummary{}, err
	}
	beat.say("writing the report")
	done, err := a.Store.CompleteReconcileRun(ctx, in.RunID, attempt, totals, day)
	if err != nil {
		if errors.Is(err, store.ErrRunNotRunning) {
			return workflows.ReconcileSummary{}, nonRetryable(workflows.ErrTypeStatusConflict, "%v", err)
		}
		return workflows.ReconcileSummary{}, err
	}
	sum, err := a.runSummary(ctx, done)
	if err != nil {
		return workflows.ReconcileSummary{}, err
	}
	log.Info("reconciliation complete", "bill_rows", done.BillRows, "drift", done.Drift, "explained", done.Explained,
		"drift_by_kind", sum.DriftByKind, "download_and_stage_ms", staged.Milliseconds(),
		"total_ms", time.Since(started).Milliseconds())
	return sum, nil
}

// noteAttemptFailure records on the run why this attempt failed, so that
// the API and `ordersaga reconcile` say it while the workflow retries (the
// run's last failure otherwise shows only in the Web UI). Best effort, also
// when the attempt was cancelled: the failure itself is what counts.
func (a *Activities) noteAttemptFailure(ctx context.Context, log *slog.Logger, runID, attempt int64, err error) {
	reason := err.Error()
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		reason = appErr.Message() // without the SDK's "(type: …, retryable: …)" suffix
	}
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if nerr := a.Store.NoteReconcileAttemptFailure(nctx, runID, attempt, reason); nerr != nil {
		log.Warn("could not note why the attempt failed", "error", nerr, "reason", reason)
	}
}

// stageBill downloads the bill and stages its rows while reading them. The
// SHA-1 is known only at the end: until then (and when it fails) the staged
// rows are no report — the run becomes one only in CompleteReconcileRun.
func (a *Activities) stageBill(ctx context.Context, log *slog.Logger, in workflows.ReconcileBillInput, attempt int64, tb wxpay.TradeBill, beat *heartbeat) (store.BillTotals, error) {
	body, err := a.Pay.DownloadBill(ctx, tb)
	if err != nil {
		if wxpay.StatusCode(err) == 0 && wxpay.Classify(err) == wxpay.KindPermanent {
			// Refused before sending (a download_url off WeChat's host).
			return store.BillTotals{}, refused("bill download of "+in.BillDate, err)
		}
		// Whatever WeChat answered (an expired URL is a 400), the next
		// attempt asks for a new URL.
		return store.BillTotals{}, fmt.Errorf("download the bill of %s: %w", in.BillDate, err)
	}
	defer body.Close()
	dl, err := tradebill.OpenGzip(body, tb.HashValue)
	if err != nil {
		return store.BillTotals{}, badBill(in.BillDate, err)
	}
	rd, err := tradebill.NewReader(dl)
	if err != nil {
		return store.BillTotals{}, badBill(in.BillDate, err)
	}
	mchID := a.Pay.Config().MchID
	totals := store.BillTotals{State: store.BillReady, SHA1: tb.HashValue}
	batch := make([]store.BillRow, 0, stageRows)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := a.Store.StageBillRows(ctx, batch); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}
	beat.say("reading the bill")
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return store.BillTotals{}, badBill(in.BillDate, err)
		}
		if row.MchID != mchID {
			return store.BillTotals{}, badBill(in.BillDate, fmt.Errorf("line %d is of merchant %q, not %q", row.Line, row.MchID, mchID))
		}
		totals.Rows++
		br := store.BillRow{RunID: in.RunID, Attempt: attempt, Line: int64(row.Line), TransactionID: row.TransactionID,
			OutTradeNo: row.OutTradeNo, TradedAt: row.Time}
		switch row.TradeState {
		case tradebill.StateSuccess:
			br.Kind, br.AmountFen = store.BillRowPayment, row.TotalFen
			totals.Payments++
			totals.PaymentFen += row.TotalFen
		case tradebill.StateRefund:
			br.Kind, br.AmountFen, br.OutRefundNo, br.Status = store.BillRowRefund, row.RequestedRefundFen, row.OutRefundNo, row.RefundStatus
			totals.Refunds++
			totals.RefundFen += row.RequestedRefundFen
		default:
			// A revoked payment-code payment: mini-programs have none.
			log.Warn("bill row of an unexpected trade state ignored", "line", row.Line, "trade_state", row.TradeState)
			continue
		}
		if batch = append(batch, br); len(batch) == stageRows {
			if err := flush(); err != nil {
				return store.BillTotals{}, err
			}
			beat.say(fmt.Sprintf("%d bill rows read", totals.Rows))
		}
	}
	if err := dl.Verify(); err != nil {
		return store.BillTotals{}, badBill(in.BillDate, err)
	}
	if err := flush(); err != nil {
		return store.BillTotals{}, err
	}
	// The fees of the day, for the books: the summary's, which the reader
	// checked against the rows.
	totals.FeeMilliFen = rd.Summary().FeeMilliFen
	log.Info("bill read", "rows", totals.Rows, "bytes", dl.Size(), "sha1", tb.HashValue)
	return totals, nil
}

// resolveShopSide asks WeChat about each payment and refund the shop has
// for the day and the bill does not: WeChat knows it under another day (it
// crossed midnight: explained) or not at all (drift).
func (a *Activities) resolveShopSide(ctx context.Context, in workflows.ReconcileBillInput, attempt int64, day store.DayWindow, beat *heartbeat) error {
	open, err := a.Store.UnresolvedShopDrifts(ctx, in.RunID, attempt, maxResolveQueries+1)
	if err != nil {
		return err
	}
	for i, d := range open {
		if i == maxResolveQueries {
			break // left as found: "the bill does not list it"
		}
		var err error
		switch d.Kind {
		case store.DriftPaymentNotAtWechat:
			err = a.resolvePayment(ctx, &d, day)
		case store.DriftRefundNotAtWechat:
			err = a.resolveRefund(ctx, &d, day)
		}
		if err != nil {
			return err
		}
		if err := a.Store.ResolveDrift(ctx, d); err != nil {
			return err
		}
		beat.say(fmt.Sprintf("asked WeChat about %d of the shop's %d items the bill lacks", i+1, len(open)))
	}
	return nil
}

func otherDayNote(what string, at time.Time) string {
	return fmt.Sprintf("%s at %s Beijing time: in the bill of %s", what, at.In(chinaTime).Format("2006-01-02 15:04:05"),
		at.In(chinaTime).Format("2006-01-02"))
}

func (a *Activities) resolvePayment(ctx context.Context, d *store.ReconcileDrift, day store.DayWindow) error {
	tx, err := a.Pay.QueryTransaction(ctx, d.TransactionID)
	switch {
	case wxpay.Code(err) == codeOrderNotExist:
		d.Note = "the shop recorded this payment; WeChat has no such transaction"
		return nil
	case err != nil:
		return wechatError("query transaction "+d.TransactionID, err)
	}
	amount := tx.AmountTotalFen
	d.WechatFen = &amount
	d.WechatTime = tx.SuccessTime
	switch {
	case tx.SuccessTime == nil || (tx.TradeState != workflows.TradeSuccess && tx.TradeState != workflows.TradeRefund):
		d.Note = fmt.Sprintf("the shop recorded this payment; WeChat says %s", tx.TradeState)
	case tx.SuccessTime.Before(day.From) || !tx.SuccessTime.Before(day.To):
		d.Kind, d.Note = store.DriftPaymentOtherBill, otherDayNote("WeChat took it", *tx.SuccessTime)
	default:
		d.Note = "WeChat has this payment on this day, but its bill does not list it"
	}
	return nil
}

func (a *Activities) resolveRefund(ctx context.Context, d *store.ReconcileDrift, day store.DayWindow) error {
	r, err := a.Pay.QueryRefund(ctx, d.OutRefundNo)
	switch {
	case wxpay.Code(err) == codeResourceNotExists:
		d.Note = "the shop asked for this refund; WeChat has no such refund"
		return nil
	case err != nil:
		return wechatError("query refund "+d.OutRefundNo, err)
	}
	amount := r.RefundFen
	d.WechatFen = &amount
	d.WechatTime = r.CreateTime
	switch {
	case r.CreateTime == nil:
		d.Note = "WeChat has this refund but says not when it took it"
	case r.CreateTime.Before(day.From) || !r.CreateTime.Before(day.To):
		d.Kind, d.Note = store.DriftRefundOtherBill, otherDayNote("WeChat accepted it", *r.CreateTime)
	default:
		d.Note = "WeChat accepted this refund on this day, but its bill does not list it"
	}
	return nil
}

// runSummary is a completed run as the workflow sees it.
func (a *Activities) runSummary(ctx context.Context, run store.ReconcileRun) (workflows.ReconcileSummary, error) {
	counts, err := a.Store.DriftCounts(ctx, run.ID)
	if err != nil {
		return workflows.ReconcileSummary{}, err
	}
	sum := workflows.ReconcileSummary{
		RunID: run.ID, BillDate: run.BillDate, NoStatement: run.BillState == store.BillNone,
		BillSHA1: run.BillSHA1, BillRows: run.BillRows,
		WechatPayments: run.WechatPayments, WechatPaymentFen: run.WechatPaymentFen,
		WechatRefunds: run.WechatRefunds, WechatRefundFen: run.WechatRefundFen, FeeMilliFen: run.WechatFeeMilliFen,
		ShopPayments: run.ShopPayments, ShopPaymentFen: run.ShopPaymentFen,
		ShopRefunds: run.ShopRefunds, ShopRefundFen: run.ShopRefundFen,
		MatchedPayments: run.MatchedPayments, MatchedRefunds: run.MatchedRefunds,
		Drift: run.Drift, Explained: run.Explained,
	}
	for kind, n := range counts {
		if store.ExplainedKind(kind) {
			if sum.ExplainedByKind == nil {
				sum.ExplainedByKind = map[string]int64{}
			}
			sum.ExplainedByKind[kind] = n
		} else {
			if sum.DriftByKind == nil {
				sum.DriftByKind = map[string]int64{}
			}
			sum.DriftByKind[kind] = n
		}
	}
	return sum, nil
}

// heartbeat tells Temporal, from a goroutine of its own, that the activity
// is alive and what it is doing — also while it waits on one long statement
// or download. A worker that dies stops it, and its attempt times out.
type heartbeat struct {
	mu   sync.Mutex
	what string
	done chan struct{}
	wg   sync.WaitGroup
}

func startHeartbeat(ctx context.Context, what string) *heartbeat {
	h := &heartbeat{what: what, done: make(chan struct{})}
	activity.RecordHeartbeat(ctx, what)
	h.wg.Go(func() {
		t := time.NewTicker(heartbeatEvery)
		defer t.Stop()
		for {
			select {
			case <-h.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				h.mu.Lock()
				what := h.what
				h.mu.Unlock()
				activity.RecordHeartbeat(ctx, what)
			}
		}
	})
	return h
}

// say sets what the next heartbeats report.
func (h *heartbeat) say(what string) {
	h.mu.Lock()
	h.what = what
	h.mu.Unlock()
}

func (h *heartbeat) stop() {
	close(h.done)
	h.wg.Wait()
}
