package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"ordersaga/internal/status"
)

// Reconciliation: the shop's payments and refunds of a day against WeChat
// Pay's trade bill of that day. A run stages the bill's rows as they are
// read, compares them with the payments and refunds tables in SQL (the
// database does the joins: a day of a million rows never sits in the
// worker's memory), writes one drift row per difference, and becomes the
// date's report in one transaction. Until then the date's report is the
// previous complete run, if any.

// Reconciliation run statuses.
const (
	RunRunning    = "RUNNING"
	RunComplete   = "COMPLETE"   // the date's report
	RunFailed     = "FAILED"     // ended without a report (Error says why)
	RunSuperseded = "SUPERSEDED" // a later run of the date replaced its report
)

// Bill states of a run.
const (
	BillReady    = "READY"        // downloaded, checked and compared
	BillNone     = "NO_STATEMENT" // WeChat has no bill: no trade that day
	BillCreating = "CREATING"     // WeChat is still making it: the run waits
)

// Drift kinds: what differs between WeChat's bill and the shop. The kinds
// of ExplainedKinds are listed apart: they are expected, not drift.
const (
	// DriftPaymentNotInShop: a payment in the bill the shop never recorded
	// (for an order number it never issued, or for one of its orders).
	DriftPaymentNotInShop = "PAYMENT_NOT_IN_SHOP"
	// DriftPaymentNotAtWechat: a payment the shop recorded for the day that
	// WeChat does not have.
	DriftPaymentNotAtWechat = "PAYMENT_NOT_AT_WECHAT"
	// DriftPaymentAmount: both have the payment, with other amounts.
	DriftPaymentAmount = "PAYMENT_AMOUNT_DIFFERS"
	// DriftRefundNotInShop: a refund WeChat made that the shop did not ask
	// for — made by hand in the merchant platform, typically.
	DriftRefundNotInShop = "REFUND_NOT_IN_SHOP"
	// DriftRefundNotAtWechat: a refund the shop asked for that WeChat never
	// made.
	DriftRefundNotAtWechat = "REFUND_NOT_AT_WECHAT"
	// DriftRefundAmount: both have the refund, with other amounts.
	DriftRefundAmount = "REFUND_AMOUNT_DIFFERS"
	// DriftRefundStatus: the bill says the refund succeeded and the shop
	// that it failed, or the reverse.
	DriftRefundStatus = "REFUND_STATUS_DIFFERS"
	// DriftKeptButRefunded: the shop's order keeps (PAID, SHIPPED,
	// COMPLETED) a transaction WeChat refunded in full (the bill says
	// SUCCESS: a refund of every item still PROCESSING, or one WeChat could
	// not make, leaves an order refunded in parts PAID, as it should).
	DriftKeptButRefunded = "ORDER_KEPT_BUT_REFUNDED"

	// DriftStrayPayment: money no order keeps (a payment after its order
	// closed, a second payment, a mismatch), returned by a stray-payment
	// refund: expected.
	DriftStrayPayment = "STRAY_PAYMENT"
	// DriftPaymentOtherBill: a payment of the shop's day that WeChat has,
	// in another day's bill (its success time is the other side of
	// midnight in Beijing): expected.
	DriftPaymentOtherBill = "PAYMENT_IN_OTHER_BILL"
	// DriftRefundOtherBill: a refund the shop asked for on this day that
	// WeChat accepted on another (asked at 23:59:59, accepted after
	// midnight; or retried for days while the merchant account was short):
	// it is in that day's bill: expected.
	DriftRefundOtherBill = "REFUND_IN_OTHER_BILL"
)

// DriftKinds lists every drift kind, unexplained first.
func DriftKinds() []string {
	return []string{DriftPaymentNotInShop, DriftPaymentNotAtWechat, DriftPaymentAmount,
		DriftRefundNotInShop, DriftRefundNotAtWechat, DriftRefundAmount, DriftRefundStatus,
		DriftKeptButRefunded, DriftStrayPayment, DriftPaymentOtherBill, DriftRefundOtherBill}
}

// ExplainedKind reports whether a drift of this kind is expected (listed
// apart) rather than unexplained.
func ExplainedKind(kind string) bool {
	return kind == DriftStrayPayment || kind == DriftPaymentOtherBill || kind == DriftRefundOtherBill
}

// Bill row kinds (reconciliation_bill_rows.kind).
const (
	BillRowPayment = "PAYMENT"
	BillRowRefund  = "REFUND"
)

// ReconcileRun is one attempt at one bill date.
type ReconcileRun struct {
	ID            int64  `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	BillDate      string `gorm:"column:bill_date" json:"bill_date"`
	WorkflowID    string `gorm:"column:workflow_id" json:"workflow_id"`
	WorkflowRunID string `gorm:"column:workflow_run_id" json:"workflow_run_id"`
	Status        string `gorm:"column:status" json:"status"`
	// Attempt numbers the run's attempts: the rows of the last one count.
	Attempt           int64      `gorm:"column:attempt" json:"attempt"`
	BillState         string     `gorm:"column:bill_state" json:"bill_state,omitempty"`
	BillSHA1          string     `gorm:"column:bill_sha1" json:"bill_sha1,omitempty"`
	BillRows          int64      `gorm:"column:bill_rows" json:"bill_rows"`
	WechatPayments    int64      `gorm:"column:wechat_payments" json:"wechat_payments"`
	WechatPaymentFen  int64      `gorm:"column:wechat_payment_fen" json:"wechat_payment_fen"`
	WechatRefunds     int64      `gorm:"column:wechat_refunds" json:"wechat_refunds"`
	WechatRefundFen   int64      `gorm:"column:wechat_refund_fen" json:"wechat_refund_fen"`
	WechatFeeMilliFen int64      `gorm:"column:wechat_fee_milli_fen" json:"wechat_fee_milli_fen"`
	ShopPayments      int64      `gorm:"column:shop_payments" json:"shop_payments"`
	ShopPaymentFen    int64      `gorm:"column:shop_payment_fen" json:"shop_payment_fen"`
	ShopRefunds       int64      `gorm:"column:shop_refunds" json:"shop_refunds"`
	ShopRefundFen     int64      `gorm:"column:shop_refund_fen" json:"shop_refund_fen"`
	MatchedPayments   int64      `gorm:"column:matched_payments" json:"matched_payments"`
	MatchedRefunds    int64      `gorm:"column:matched_refunds" json:"matched_refunds"`
	Drift             int64      `gorm:"column:drift" json:"drift"`
	Explained         int64      `gorm:"column:explained" json:"explained"`
	Error             string     `gorm:"column:error" json:"error,omitempty"`
	StartedAt         time.Time  `gorm:"column:started_at" json:"started_at"`
	UpdatedAt         time.Time  `gorm:"column:updated_at" json:"updated_at"`
	FinishedAt        *time.Time `gorm:"column:finished_at" json:"finished_at,omitempty"`
}

// TableName implements gorm's tabler.
func (ReconcileRun) TableName() string { return "reconciliation_runs" }

// ReconcileDrift is one difference (or one expected item listed apart).
type ReconcileDrift struct {
	ID            int64      `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	RunID         int64      `gorm:"column:run_id" json:"-"`
	Attempt       int64      `gorm:"column:attempt" json:"-"`
	Kind          string     `gorm:"column:kind" json:"kind"`
	Explained     bool       `gorm:"column:explained" json:"explained"`
	TransactionID string     `gorm:"column:transaction_id" json:"transaction_id,omitempty"`
	OutTradeNo    string     `gorm:"column:out_trade_no" json:"out_trade_no,omitempty"`
	OutRefundNo   string     `gorm:"column:out_refund_no" json:"out_refund_no,omitempty"`
	WechatFen     *int64     `gorm:"column:wechat_fen" json:"wechat_fen"`
	ShopFen       *int64     `gorm:"column:shop_fen" json:"shop_fen"`
	WechatTime    *time.Time `gorm:"column:wechat_time" json:"wechat_time,omitempty"`
	OrderStatus   string     `gorm:"column:order_status" json:"order_status,omitempty"`
	Note          string     `gorm:"column:note" json:"note"`
	Resolved      bool       `gorm:"column:resolved" json:"-"`
}

// TableName implements gorm's tabler.
func (ReconcileDrift) TableName() string { return "reconciliation_drifts" }

// BillRow is one row of the bill, as a run compares it.
type BillRow struct {
	RunID         int64     `gorm:"column:run_id;primaryKey"`
	Attempt       int64     `gorm:"column:attempt;primaryKey"`
	Line          int64     `gorm:"column:line;primaryKey"`
	Kind          string    `gorm:"column:kind"` // BillRowPayment | BillRowRefund
	TransactionID string    `gorm:"column:transaction_id"`
	OutTradeNo    string    `gorm:"column:out_trade_no"`
	OutRefundNo   string    `gorm:"column:out_refund_no"`
	AmountFen     int64     `gorm:"column:amount_fen"` // the payment's 订单金额, the refund's 申请退款金额
	Status        string    `gorm:"column:status"`     // a refund's status as the bill writes it
	TradedAt      time.Time `gorm:"column:traded_at"`
}

// TableName implements gorm's tabler.
func (BillRow) TableName() string { return "reconciliation_bill_rows" }

// DayWindow is a bill date as instants: [From, To) in UTC.
type DayWindow struct{ From, To time.Time }

// ErrRunNotRunning: the run already ended (COMPLETE, FAILED or SUPERSEDED),
// or the attempt is not its latest (one that timed out and went on).
var ErrRunNotRunning = errors.New("reconciliation run is not running")

// StartReconcileRun records a run for the workflow run workflowRunID (once:
// a retry gets the same run).
func (s *Store) StartReconcileRun(ctx context.Context, billDate, workflowID, workflowRunID string) (_ ReconcileRun, err error) {
	defer annotate(&err, "start reconciliation of %s", billDate)
	if _, perr := time.Parse("2006-01-02", billDate); perr != nil || workflowRunID == "" {
		return ReconcileRun{}, invalid("bill date %q (want yyyy-MM-DD) and workflow run %q", billDate, workflowRunID)
	}
	t := now()
	run := ReconcileRun{BillDate: billDate, WorkflowID: workflowID, WorkflowRunID: workflowRunID,
		Status: RunRunning, StartedAt: t, UpdatedAt: t}
	res := s.conn(ctx).Exec(`INSERT INTO reconciliation_runs (bill_date, workflow_id, workflow_run_id, status, started_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (workflow_run_id) DO NOTHING`,
		run.BillDate, run.WorkflowID, run.WorkflowRunID, run.Status, run.StartedAt, run.UpdatedAt)
	if res.Error != nil {
		return ReconcileRun{}, res.Error
	}
	if err := s.conn(ctx).Where("workflow_run_id = ?", workflowRunID).Take(&run).Error; err != nil {
		return ReconcileRun{}, notFound(err, "run of %s", workflowRunID)
	}
	return run, nil
}

// GetReconcileRun returns a run by id.
func (s *Store) GetReconcileRun(ctx context.Context, id int64) (_ ReconcileRun, err error) {
	defer annotate(&err, "get reconciliation run")
	var run ReconcileRun
	if err := s.conn(ctx).Where("id = ?", id).Take(&run).Error; err != nil {
		return ReconcileRun{}, notFound(err, "reconciliation run %d", id)
	}
	return run, nil
}

// ResetReconcileRun starts a new attempt at a RUNNING run and returns its
// number: what earlier attempts left (staged rows, drifts) is removed, and
// an earlier attempt still at work (it timed out, its worker did not know)
// writes rows of its own number, which nothing reads any more.
func (s *Store) ResetReconcileRun(ctx context.Context, id int64) (attempt int64, err error) {
	defer annotate(&err, "reset reconciliation run %d", id)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockRunningRun(tx, id); err != nil {
			return err
		}
		if err := clearRun(tx, id); err != nil {
			return err
		}
		// error stays: why the attempt before failed, until this one ends.
		if err := tx.Exec(`UPDATE reconciliation_runs SET attempt = attempt + 1, bill_state = '', bill_sha1 = '', bill_rows = 0,
updated_at = ? WHERE id = ?`, now(), id).Error; err != nil {
			return err
		}
		return tx.Raw(`SELECT attempt FROM reconciliation_runs WHERE id = ?`, id).Scan(&attempt).Error
	})
	return attempt, err
}

// NoteReconcileAttemptFailure keeps why an attempt at a RUNNING run failed
// (the workflow retries it): until the run completes or fails for good,
// its error says why the last attempt did not finish. An attempt that is
// not the run's latest, or a run that ended, changes nothing.
func (s *Store) NoteReconcileAttemptFailure(ctx context.Context, runID, attempt int64, reason string) (err error) {
	defer annotate(&err, "note failed attempt %d of reconciliation run %d", attempt, runID)
	return s.conn(ctx).Exec(`UPDATE reconciliation_runs SET error = ?, updated_at = ? WHERE id = ? AND attempt = ? AND status = ?`,
		reason, now(), runID, attempt, RunRunning).Error
}

// lockRunningRun checks that the run is RUNNING and, on PostgreSQL, locks
// its row until the transaction ends, so that a new attempt waits for one
// that is completing (SQLite's write transactions are exclusive already).
func (s *Store) lockRunningRun(tx *gorm.DB, id int64) error {
	if s.dialect == DialectPostgres {
		if err := tx.Exec(`SELECT id FROM reconciliation_runs WHERE id = ? FOR UPDATE`, id).Error; err != nil {
			return err
		}
	}
	return runningRun(tx, id)
}

func runningRun(tx *gorm.DB, id int64) error {
	var status string
	if err := tx.Raw(`SELECT status FROM reconciliation_runs WHERE id = ?`, id).Scan(&status).Error; err != nil {
		return err
	}
	switch status {
	case "":
		return fmt.Errorf("reconciliation run %d: %w", id, ErrNotFound)
	case RunRunning:
		return nil
	}
	return fmt.Errorf("reconciliation run %d is %s: %w", id, status, ErrRunNotRunning)
}

func clearRun(tx *gorm.DB, id int64) error {
	if err := tx.Exec(`DELETE FROM reconciliation_bill_rows WHERE run_id = ?`, id).Error; err != nil {
		return err
	}
	return tx.Exec(`DELETE FROM reconciliation_drifts WHERE run_id = ?`, id).Error
}

// bulk is the handle of the reconciliation's large statements: on a big day
// they take seconds by nature, which is not worth a slow-query warning each
// (errors are returned).
func (s *Store) bulk(ctx context.Context) *gorm.DB {
	return s.db.Session(&gorm.Session{Logger: s.db.Logger.LogMode(logger.Silent)}).WithContext(ctx)
}

// SetReconcileBillState records what WeChat said of the bill (a RUNNING run).
func (s *Store) SetReconcileBillState(ctx context.Context, id int64, state string) (err error) {
	defer annotate(&err, "set bill state of reconciliation run %d", id)
	res := s.conn(ctx).Exec(`UPDATE reconciliation_runs SET bill_state = ?, updated_at = ? WHERE id = ? AND status = ?`, state, now(), id, RunRunning)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return runningRun(s.conn(ctx), id)
	}
	return nil
}

// stageBatch is how many bill rows one INSERT carries (9 columns each: far
// below SQLite's and PostgreSQL's limits on parameters).
const stageBatch = 500

// StageBillRows writes bill rows of a run's attempt (any number: they go in
// batches).
func (s *Store) StageBillRows(ctx context.Context, rows []BillRow) (err error) {
	defer annotate(&err, "stage %d bill rows", len(rows))
	for i := range rows {
		rows[i].TradedAt = dbTime(rows[i].TradedAt)
	}
	return s.bulk(ctx).CreateInBatches(rows, stageBatch).Error
}

// keptStatuses are the statuses in which an order keeps the money it was paid (status.Order.Kept).
var keptStatuses = []string{string(status.Paid), string(status.Shipped), string(status.Completed)}

// CompareReconcileRun writes the drift of a run whose bill rows are staged:
// everything that can be decided from the bill and the shop's tables. What
// the shop has and the bill lacks is written unresolved
// (UnresolvedShopDrifts): the caller asks WeChat about each (it may be in
// another day's bill) and ResolveDrift records the answer.
// strayRefundPrefix + transaction_id is the out_refund_no of a stray
// payment's refund.
func (s *Store) CompareReconcileRun(ctx context.Context, runID, attempt int64, day DayWindow, strayRefundPrefix string) (err error) {
	defer annotate(&err, "compare reconciliation run %d", runID)
	from, to := dbTime(day.From), dbTime(day.To)
	if s.dialect == DialectPostgres {
		// The staged rows came in the last minutes: without fresh
		// statistics the planner takes the table for empty and joins a
		// day of payments with it row by row (minutes instead of a second
		// at 100 000 rows).
		if err := s.bulk(ctx).Exec(`ANALYZE reconciliation_bill_rows`).Error; err != nil {
			return err
		}
	}
	// (The notes hold no question mark: gorm would take it for a parameter.)
	const insert = `INSERT INTO reconciliation_drifts (run_id, attempt, kind, explained, transaction_id, out_trade_no, out_refund_no,
wechat_fen, shop_fen, wechat_time, order_status, note, resolved) `
	// A payment of the shop's day: by WeChat's success time (the bill's
	// clock), or when it was recorded if WeChat gave none.
	const paymentInDay = `((p.success_time >= ? AND p.success_time < ?) OR (p.success_time IS NULL AND p.created_at >= ? AND p.created_at < ?))`
	// A refund of the shop's day: asked for that day; one WeChat refused
	// outright (CLOSED with no refund_id) never reached WeChat's books.
	const refundInDay = `(r.created_at >= ? AND r.created_at < ? AND NOT (r.status = 'CLOSED' AND r.refund_id = ''))`
	kept := "('" + strings.Join(keptStatuses, "','") + "')"
	// Each statement's placeholders, in order: (for the shop's side, the run
	// and attempt,) the kind, whether it is explained, whether it is resolved
	// (the shop's side is not: WeChat is asked about it next), then its
	// filters. The bill's rows are the attempt's (b.run_id, b.attempt).
	bill := func(kind string) []any { return []any{kind, ExplainedKind(kind), true} }
	shopSide := func(kind string) []any { return []any{runID, attempt, kind, ExplainedKind(kind), false} }
	stmts := []struct {
		kind string
		sql  string
		args []any
	}{
		{DriftPaymentNotInShop, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, '', b.amount_fen, NULL, b.traded_at, COALESCE(o.status, ''),
  CASE WHEN o.order_no IS NULL THEN 'no order with this number in the shop: another system on the merchant, or money nobody here accounts for'
       ELSE 'the shop never recorded this payment of its order' END, ?
FROM reconciliation_bill_rows b LEFT JOIN orders o ON o.order_no = b.out_trade_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'PAYMENT'
  AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.transaction_id = b.transaction_id)`,
			append(bill(DriftPaymentNotInShop), runID, attempt)},

		{DriftPaymentAmount, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, '', b.amount_fen, p.amount_fen, b.traded_at, COALESCE(o.status, ''),
  'WeChat and the shop recorded other amounts', ?
FROM reconciliation_bill_rows b JOIN payments p ON p.transaction_id = b.transaction_id
  LEFT JOIN orders o ON o.order_no = p.order_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'PAYMENT' AND p.amount_fen <> b.amount_fen`,
			append(bill(DriftPaymentAmount), runID, attempt)},

		{DriftStrayPayment, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, COALESCE(sr.out_refund_no, ''), b.amount_fen, p.amount_fen, b.traded_at, COALESCE(o.status, ''),
  CASE WHEN sr.out_refund_no IS NULL THEN 'money no order keeps; no refund of it recorded yet'
       ELSE 'money no order keeps, returned by refund ' || sr.out_refund_no || ' (' || sr.status || ')' END, ?
FROM reconciliation_bill_rows b JOIN payments p ON p.transaction_id = b.transaction_id
  LEFT JOIN orders o ON o.order_no = p.order_no
  LEFT JOIN refunds sr ON sr.out_refund_no = ? || p.transaction_id
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'PAYMENT' AND p.amount_fen = b.amount_fen
  AND (o.order_no IS NULL OR o.transaction_id <> p.transaction_id)`,
			append(bill(DriftStrayPayment), strayRefundPrefix, runID, attempt)},

		{DriftPaymentNotAtWechat, insert + `
SELECT ?, ?, ?, ?, p.transaction_id, p.order_no, '', NULL, p.amount_fen, NULL, COALESCE(o.status, ''),
  'the shop recorded this payment; the bill does not list it', ?
FROM payments p LEFT JOIN orders o ON o.order_no = p.order_no
WHERE ` + paymentInDay + `
  AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_rows b WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'PAYMENT' AND b.transaction_id = p.transaction_id)`,
			append(shopSide(DriftPaymentNotAtWechat), from, to, from, to, runID, attempt)},

		{DriftRefundNotInShop, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, b.out_refund_no, b.amount_fen, NULL, b.traded_at, COALESCE(o.status, ''),
  CASE WHEN o.transaction_id = b.transaction_id AND o.status IN ` + kept + `
       THEN 'a refund the shop never asked for: made by hand in the merchant platform, or by another system; order ' || o.order_no || ' is ' || o.status || ' and counts this money as kept'
       ELSE 'a refund the shop never asked for: made by hand in the merchant platform, or by another system' END, ?
FROM reconciliation_bill_rows b LEFT JOIN orders o ON o.order_no = b.out_trade_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND'
  AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.out_refund_no = b.out_refund_no)`,
			append(bill(DriftRefundNotInShop), runID, attempt)},

		{DriftRefundAmount, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, b.out_refund_no, b.amount_fen, r.refund_fen, b.traded_at, COALESCE(o.status, ''),
  'WeChat and the shop recorded other amounts for this refund', ?
FROM reconciliation_bill_rows b JOIN refunds r ON r.out_refund_no = b.out_refund_no
  LEFT JOIN orders o ON o.order_no = r.order_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND' AND r.refund_fen <> b.amount_fen`,
			append(bill(DriftRefundAmount), runID, attempt)},

		{DriftRefundStatus, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, b.out_refund_no, b.amount_fen, r.refund_fen, b.traded_at, COALESCE(o.status, ''),
  'the bill says the refund is ' || b.status || ', the shop that it is ' || r.status, ?
FROM reconciliation_bill_rows b JOIN refunds r ON r.out_refund_no = b.out_refund_no
  LEFT JOIN orders o ON o.order_no = r.order_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND' AND r.refund_fen = b.amount_fen
  AND ((b.status = 'SUCCESS' AND r.status IN ('CLOSED', 'ABNORMAL')) OR (b.status = 'FAIL' AND r.status = 'SUCCESS'))`,
			append(bill(DriftRefundStatus), runID, attempt)},

		{DriftKeptButRefunded, insert + `
SELECT b.run_id, b.attempt, ?, ?, b.transaction_id, b.out_trade_no, b.out_refund_no, b.amount_fen, r.refund_fen, b.traded_at, o.status,
  'WeChat refunded the whole payment; order ' || o.order_no || ' is still ' || o.status, ?
FROM reconciliation_bill_rows b JOIN refunds r ON r.out_refund_no = b.out_refund_no
  JOIN orders o ON o.order_no = b.out_trade_no
WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND' AND b.status = 'SUCCESS' AND r.refund_fen = b.amount_fen AND r.refund_fen = r.total_fen
  AND o.transaction_id = b.transaction_id AND o.status IN ` + kept,
			append(bill(DriftKeptButRefunded), runID, attempt)},

		{DriftRefundNotAtWechat, insert + `
SELECT ?, ?, ?, ?, r.transaction_id, r.order_no, r.out_refund_no, NULL, r.refund_fen, NULL, COALESCE(o.status, ''),
  'the shop asked for this refund; the bill does not list it', ?
FROM refunds r LEFT JOIN orders o ON o.order_no = r.order_no
WHERE ` + refundInDay + `
  AND NOT EXISTS (SELECT 1 FROM reconciliation_bill_rows b WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND' AND b.out_refund_no = r.out_refund_no)`,
			append(shopSide(DriftRefundNotAtWechat), from, to, runID, attempt)},
	}
	for _, st := range stmts {
		if err := s.bulk(ctx).Exec(st.sql, st.args...).Error; err != nil {
			return fmt.Errorf("%s: %w", st.kind, err)
		}
	}
	return nil
}

// UnresolvedShopDrifts lists up to limit drifts of the shop's side that
// nobody asked WeChat about yet, oldest first.
func (s *Store) UnresolvedShopDrifts(ctx context.Context, runID, attempt int64, limit int) (_ []ReconcileDrift, err error) {
	defer annotate(&err, "unresolved drifts of run %d", runID)
	var out []ReconcileDrift
	err = s.conn(ctx).Where("run_id = ? AND attempt = ? AND resolved = ?", runID, attempt, false).Order("id").Limit(limit).Find(&out).Error
	return out, err
}

// ResolveDrift records what WeChat said of a shop-side drift: its kind
// (still drift, or in another day's bill), note and WeChat's amount and time.
func (s *Store) ResolveDrift(ctx context.Context, d ReconcileDrift) (err error) {
	defer annotate(&err, "resolve drift %d", d.ID)
	if !slices.Contains(DriftKinds(), d.Kind) {
		return invalid("unknown drift kind %q", d.Kind)
	}
	return s.conn(ctx).Exec(`UPDATE reconciliation_drifts SET kind = ?, explained = ?, note = ?, wechat_fen = ?, wechat_time = ?, resolved = ?
WHERE id = ? AND run_id = ?`, d.Kind, ExplainedKind(d.Kind), d.Note, d.WechatFen, dbTimePtr(d.WechatTime), true, d.ID, d.RunID).Error
}

// BillTotals is what the bill itself said, for the run's report.
type BillTotals struct {
	State       string // BillReady or BillNone
	SHA1        string
	Rows        int64
	Payments    int64
	PaymentFen  int64
	Refunds     int64
	RefundFen   int64
	FeeMilliFen int64
}

// CompleteReconcileRun makes a RUNNING run the report of its date, in one
// transaction: its counts, the shop's totals of the day, the previous
// report of the date superseded (its drift rows removed), the staged bill
// rows removed. A run that is not RUNNING, or an attempt that is not its
// latest, is left alone: ErrRunNotRunning.
func (s *Store) CompleteReconcileRun(ctx context.Context, runID, attempt int64, bill BillTotals, day DayWindow) (_ ReconcileRun, err error) {
	defer annotate(&err, "complete reconciliation run %d", runID)
	from, to := dbTime(day.From), dbTime(day.To)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		tx = tx.Session(&gorm.Session{Logger: s.db.Logger.LogMode(logger.Silent)})
		if err := s.lockRunningRun(tx, runID); err != nil {
			return err
		}
		var run ReconcileRun
		if err := tx.Where("id = ?", runID).Take(&run).Error; err != nil {
			return err
		}
		if run.Attempt != attempt {
			return fmt.Errorf("attempt %d of reconciliation run %d, whose latest is %d: %w", attempt, runID, run.Attempt, ErrRunNotRunning)
		}
		var shop struct{ N, Fen int64 }
		if err := tx.Raw(`SELECT COUNT(*) AS n, COALESCE(SUM(p.amount_fen), 0) AS fen FROM payments p WHERE
((p.success_time >= ? AND p.success_time < ?) OR (p.success_time IS NULL AND p.created_at >= ? AND p.created_at < ?))`,
			from, to, from, to).Scan(&shop).Error; err != nil {
			return err
		}
		run.ShopPayments, run.ShopPaymentFen = shop.N, shop.Fen
		if err := tx.Raw(`SELECT COUNT(*) AS n, COALESCE(SUM(r.refund_fen), 0) AS fen FROM refunds r WHERE
r.created_at >= ? AND r.created_at < ? AND NOT (r.status = 'CLOSED' AND r.refund_id = '')`, from, to).Scan(&shop).Error; err != nil {
			return err
		}
		run.ShopRefunds, run.ShopRefundFen = shop.N, shop.Fen
		if err := tx.Raw(`SELECT COUNT(*) FROM reconciliation_bill_rows b JOIN payments p
ON p.transaction_id = b.transaction_id AND p.amount_fen = b.amount_fen WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'PAYMENT'`,
			runID, attempt).Scan(&run.MatchedPayments).Error; err != nil {
			return err
		}
		if err := tx.Raw(`SELECT COUNT(*) FROM reconciliation_bill_rows b JOIN refunds r
ON r.out_refund_no = b.out_refund_no AND r.refund_fen = b.amount_fen WHERE b.run_id = ? AND b.attempt = ? AND b.kind = 'REFUND'`,
			runID, attempt).Scan(&run.MatchedRefunds).Error; err != nil {
			return err
		}
		var counts struct{ Drift, Explained int64 }
		if err := tx.Raw(`SELECT COALESCE(SUM(CASE WHEN explained THEN 0 ELSE 1 END), 0) AS drift,
COALESCE(SUM(CASE WHEN explained THEN 1 ELSE 0 END), 0) AS explained FROM reconciliation_drifts WHERE run_id = ? AND attempt = ?`,
			runID, attempt).Scan(&counts).Error; err != nil {
			return err
		}
		t := now()
		if err := tx.Exec(`DELETE FROM reconciliation_drifts WHERE run_id IN
(SELECT id FROM reconciliation_runs WHERE bill_date = ? AND status = ? AND id <> ?)`, run.BillDate, RunComplete, runID).Error; err != nil {
			return err
		}
		if err := tx.Exec(`UPDATE reconciliation_runs SET status = ?, updated_at = ? WHERE bill_date = ? AND status = ? AND id <> ?`,
			RunSuperseded, t, run.BillDate, RunComplete, runID).Error; err != nil {
			return err
		}
		// This run's staged rows, its drift of earlier attempts, and what
		// attempts that timed out may have left to ended runs since.
		if err := tx.Exec(`DELETE FROM reconciliation_drifts WHERE run_id = ? AND attempt <> ?`, runID, attempt).Error; err != nil {
			return err
		}
		if err := tx.Exec(`DELETE FROM reconciliation_bill_rows WHERE run_id = ? OR run_id IN
(SELECT id FROM reconciliation_runs WHERE status <> ?)`, runID, RunRunning).Error; err != nil {
			return err
		}
		run.Status, run.BillState, run.BillSHA1, run.BillRows = RunComplete, bill.State, bill.SHA1, bill.Rows
		run.WechatPayments, run.WechatPaymentFen = bill.Payments, bill.PaymentFen
		run.WechatRefunds, run.WechatRefundFen, run.WechatFeeMilliFen = bill.Refunds, bill.RefundFen, bill.FeeMilliFen
		run.Drift, run.Explained, run.Error = counts.Drift, counts.Explained, ""
		run.UpdatedAt, run.FinishedAt = t, &t
		return tx.Save(&run).Error
	})
	if err != nil {
		return ReconcileRun{}, err
	}
	return s.GetReconcileRun(ctx, runID)
}

// FailReconcileRun ends a RUNNING run without a report: what it wrote is
// removed and the reason kept. The date's previous report stays its report.
// A run that already ended is returned as it is.
func (s *Store) FailReconcileRun(ctx context.Context, runID int64, reason string) (_ ReconcileRun, err error) {
	defer annotate(&err, "fail reconciliation run %d", runID)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if err := s.lockRunningRun(tx, runID); err != nil {
			if errors.Is(err, ErrRunNotRunning) {
				return nil
			}
			return err
		}
		if err := clearRun(tx, runID); err != nil {
			return err
		}
		t := now()
		return tx.Exec(`UPDATE reconciliation_runs SET status = ?, error = ?, updated_at = ?, finished_at = ? WHERE id = ?`,
			RunFailed, reason, t, t, runID).Error
	})
	if err != nil {
		return ReconcileRun{}, err
	}
	return s.GetReconcileRun(ctx, runID)
}

// ofLatestAttempt restricts drift rows to those of their run's latest attempt.
const ofLatestAttempt = `attempt = (SELECT attempt FROM reconciliation_runs WHERE id = ?)`

// DriftCounts counts a run's drift rows by kind.
func (s *Store) DriftCounts(ctx context.Context, runID int64) (_ map[string]int64, err error) {
	defer annotate(&err, "count drift of run %d", runID)
	var rows []struct {
		Kind string
		N    int64
	}
	if err := s.conn(ctx).Raw(`SELECT kind, COUNT(*) AS n FROM reconciliation_drifts WHERE run_id = ? AND `+ofLatestAttempt+` GROUP BY kind`,
		runID, runID).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out, nil
}

// ReconcileReport returns a date's report (its COMPLETE run, nil when there
// is none) and its latest run (nil when it was never reconciled).
func (s *Store) ReconcileReport(ctx context.Context, billDate string) (report, latest *ReconcileRun, err error) {
	defer annotate(&err, "reconciliation report of %s", billDate)
	var runs []ReconcileRun
	if err := s.conn(ctx).Where("bill_date = ? AND status = ?", billDate, RunComplete).Limit(1).Find(&runs).Error; err != nil {
		return nil, nil, err
	}
	if len(runs) > 0 {
		report = &runs[0]
	}
	runs = nil
	if err := s.conn(ctx).Where("bill_date = ?", billDate).Order("id DESC").Limit(1).Find(&runs).Error; err != nil {
		return nil, nil, err
	}
	if len(runs) > 0 {
		latest = &runs[0]
	}
	return report, latest, nil
}

// ListDrifts lists a run's drift rows with id > afterID, in id order, at
// most limit.
func (s *Store) ListDrifts(ctx context.Context, runID, afterID int64, limit int) (_ []ReconcileDrift, err error) {
	defer annotate(&err, "list drift of run %d", runID)
	var out []ReconcileDrift
	err = s.conn(ctx).Where("run_id = ? AND id > ? AND "+ofLatestAttempt, runID, afterID, runID).Order("id").Limit(limit).Find(&out).Error
	return out, err
}
