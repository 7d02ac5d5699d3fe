package chaos

import (
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/workflows"
)

// The invariant checker on hand-made states: a small settled run that holds
// every invariant, then the same state corrupted one way at a time. Each
// corruption must give a Break of the right check naming the order it was
// done to — and no break naming another order. No database, no Temporal:
// the checks read plain data.

const (
	pCoffee int64 = 1
	pTea    int64 = 2
)

var (
	completed = enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
	running   = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
	continued = enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
)

// checkState is a checker with its inputs, plus what visibility lists of the
// order workflows.
type checkState struct {
	*checker
	listed []listedWorkflow
}

// settledState is a run after it settled, every invariant holding:
//
//	paid      PAID, waits for the shop (its workflow running, idle)
//	completed shipped and COMPLETED
//	refunded  REFUNDED before shipping: stock deducted and restored
//	oversold  paid after the tea ran out: REFUNDED, stock never deducted
//	shipref   shipped, then REFUNDED by the shop: the goods left
//	closed    CLOSED unpaid at WeChat
//	noprepay  CLOSED before it ever asked WeChat
//	late      CLOSED; its late payment returned by a stray-payment workflow
//	refundfailed  paid, refund asked, WeChat failed the refund (ABNORMAL):
//	              REFUND_FAILED, flagged and listed, stock not put back
//	strayfailed   CLOSED; its late payment's refund failed at WeChat (CLOSED):
//	              the stray-payment workflow ended REFUND_FAILED
//
// The refunded order's refund took long: its workflow continued as new
// twice while it waited (two runs listed REFUNDING, then the last one).
//
// and one order the workflow refused at creation (no row).
func settledState() *checkState {
	c := newChecker()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	c.now = t0.Add(time.Hour)
	c.rows = map[string]*orderRow{}
	c.sim = map[string]paysim.TransactionView{}
	c.payments = map[string]paymentRow{}
	c.refunds = map[string]refundRow{}
	c.wf = map[string]workflowFact{}
	c.strayViews = map[string]workflows.StrayPaymentView{}
	c.strayOpen = map[string]enumspb.WorkflowExecutionStatus{}
	c.flagged = map[string]bool{}
	c.shipping = map[string]paysim.ShippingView{}
	shippedOnce := paysim.ShippingView{OrderState: paysim.ShipSettled, Uploads: make([]paysim.ShippingUpload, 1)}
	st := &checkState{checker: c}
	seq := int64(0)
	ledger := func(order, kind string, p, q int64) {
		seq++
		c.ledger = append(c.ledger, ledgerRow{id: seq, order: order, kind: kind, product: p, qty: q,
			committed: sql.NullTime{Time: t0.Add(time.Duration(seq) * time.Second), Valid: true}})
	}
	order := func(no, rowStatus string, total int64, items map[int64]int64) *orderRow {
		o := &orderRow{no: no, status: rowStatus, total: total, items: items, deadline: t0.Add(15 * time.Minute)}
		c.rows[no] = o
		want := completed
		if !status.Order(rowStatus).Terminal() {
			want = running
		}
		c.wf[no] = workflowFact{status: want, orderStatus: rowStatus}
		st.listed = append(st.listed, listedWorkflow{id: workflows.WorkflowID(no), status: want, orderStatus: rowStatus})
		return o
	}
	pay := func(o *orderRow) paysim.TransactionView {
		o.txID = "tx-" + o.no
		c.payments[o.txID] = paymentRow{txID: o.txID, order: o.no, amount: o.total}
		return paysim.TransactionView{OutTradeNo: o.no, TransactionID: o.txID, TradeState: paysim.StateSuccess, TotalFen: o.total}
	}
	refundAs := func(status string, o *orderRow, t *paysim.TransactionView, outRefundNo string) {
		t.TradeState = paysim.StateRefund
		t.Refunds = append(t.Refunds, paysim.RefundView{OutRefundNo: outRefundNo, OutTradeNo: o.no, TransactionID: t.TransactionID,
			Status: status, RefundFen: t.TotalFen, TotalFen: t.TotalFen})
		c.refunds[outRefundNo] = refundRow{outRefundNo: outRefundNo, order: o.no, txID: t.TransactionID, status: status, amount: t.TotalFen}
		if status == paysim.RefundSuccess && isOrderRefund(o.no, outRefundNo) {
			o.refundedFen += t.TotalFen
		}
	}
	refund := func(o *orderRow, t *paysim.TransactionView, outRefundNo string) {
		refundAs(paysim.RefundSuccess, o, t, outRefundNo)
	}
	record := func(no string, f func(*orderRecord)) {
		rec := &orderRecord{No: no, Packages: []string{"prepay_id=wx" + no}}
		f(rec)
		c.records = append(c.records, rec)
	}

	paid := order("paid", "PAID", 17600, map[int64]int64{pCoffee: 2})
	c.sim["paid"] = pay(paid)
	ledger("paid", "DEDUCT", pCoffee, 2)
	record("paid", func(r *orderRecord) { r.SimPaid = true; r.Packages = append(r.Packages, r.Packages[0]) })

	done := order("completed", "COMPLETED", 21600, map[int64]int64{pCoffee: 1, pTea: 1})
	done.shipped = true
	c.sim["completed"] = pay(done)
	ledger("completed", "DEDUCT", pCoffee, 1)
	ledger("completed", "DEDUCT", pTea, 1)
	c.shipping["completed"] = shippedOnce
	record("completed", func(r *orderRecord) { r.SimPaid, r.Shipped, r.ReceiptConfirmed = true, true, true })

	ref := order("refunded", "REFUNDED", 38400, map[int64]int64{pTea: 3})
	t := pay(ref)
	ledger("refunded", "DEDUCT", pTea, 3)
	ledger("refunded", "RESTORE", pTea, 3)
	refund(ref, &t, "refunded-R1")
	c.sim["refunded"] = t
	record("refunded", func(r *orderRecord) { r.SimPaid, r.RefundAsked = true, true })
	for range 2 {
		st.listed = append(st.listed, listedWorkflow{id: workflows.WorkflowID("refunded"), status: continued, orderStatus: "REFUNDING"})
	}

	over := order("oversold", "REFUNDED", 12800, map[int64]int64{pTea: 1})
	t = pay(over)
	refund(over, &t, "oversold-R1")
	c.sim["oversold"] = t
	record("oversold", func(r *orderRecord) { r.SimPaid = true })

	shipref := order("shipref", "REFUNDED", 8800, map[int64]int64{pCoffee: 1})
	shipref.shipped = true
	t = pay(shipref)
	ledger("shipref", "DEDUCT", pCoffee, 1)
	refund(shipref, &t, "shipref-R1")
	c.sim["shipref"] = t
	c.shipping["shipref"] = shippedOnce
	record("shipref", func(r *orderRecord) { r.SimPaid, r.Shipped, r.RefundAsked = true, true, true })

	order("closed", "CLOSED", 8800, map[int64]int64{pCoffee: 1})
	c.sim["closed"] = paysim.TransactionView{OutTradeNo: "closed", TradeState: paysim.StateClosed, TotalFen: 8800}
	record("closed", func(r *orderRecord) { r.CancelledTo = "CLOSED" })

	order("noprepay", "CLOSED", 12800, map[int64]int64{pTea: 1})
	record("noprepay", func(r *orderRecord) { r.Packages = nil })

	late := order("late", "CLOSED", 8800, map[int64]int64{pCoffee: 1})
	t = pay(late)
	late.txID = "" // the order never kept it
	refund(late, &t, "Stx-late")
	c.sim["late"] = t
	c.strayViews["stray-payment-tx-late"] = workflows.StrayPaymentView{Status: workflows.StrayRefunded,
		Payment: workflows.PaymentNotice{OutTradeNo: "late", TransactionID: "tx-late", AmountFen: 8800}}
	// No payer record: a payer's payment WeChat took before the close would
	// have made the order PAID (a promise). This is the order of an answer
	// lost to an API restart, paid by someone who had its prepay.

	failed := order("refundfailed", "REFUND_FAILED", 5900, map[int64]int64{pCoffee: 1})
	failed.flag = workflows.FlagRefundFailed
	c.flagged["refundfailed"] = true
	t = pay(failed)
	ledger("refundfailed", "DEDUCT", pCoffee, 1)
	refundAs(paysim.RefundAbnormal, failed, &t, "refundfailed-R1")
	c.sim["refundfailed"] = t
	record("refundfailed", func(r *orderRecord) { r.SimPaid, r.RefundAsked = true, true })

	strayFailed := order("strayfailed", "CLOSED", 3900, map[int64]int64{pTea: 1})
	t = pay(strayFailed)
	strayFailed.txID = ""
	refundAs(paysim.RefundClosed, strayFailed, &t, "Stx-strayfailed")
	c.sim["strayfailed"] = t
	c.strayViews["stray-payment-tx-strayfailed"] = workflows.StrayPaymentView{Status: workflows.StrayRefundFailed,
		Payment: workflows.PaymentNotice{OutTradeNo: "strayfailed", TransactionID: "tx-strayfailed", AmountFen: 3900}}

	st.listed = append(st.listed, listedWorkflow{id: "order-refused", status: completed, orderStatus: string(status.Refused)})
	slices.SortFunc(c.records, func(a, b *orderRecord) int { return strings.Compare(a.No, b.No) })

	// Out: coffee 2 (paid) + 1 (completed) + 1 (shipref) + 1 (refundfailed);
	// tea 1 (completed).
	c.initial = map[int64]int64{pCoffee: 100, pTea: 10}
	c.stock = map[int64]int64{pCoffee: 95, pTea: 9}
	return st
}

// run runs every check that reads plain data, as check does.
func (st *checkState) run() []Break {
	c := st.checker
	c.money()
	c.agreement()
	c.stockCheck()
	c.shippingCheck()
	c.orderWorkflows()
	breaks, refused := c.visibilityBreaks(st.listed)
	c.r.Breaks = append(c.r.Breaks, breaks...)
	c.r.RefusedByWorkflow = refused
	c.strayChecks()
	c.promises()
	return c.r.Breaks
}

func TestCheckerSettledStateHolds(t *testing.T) {
	st := settledState()
	if breaks := st.run(); len(breaks) != 0 {
		t.Fatalf("a settled state that holds every invariant gave breaks:\n%s", breakLines(breaks))
	}
	m := st.r.Money
	if m.Transactions != 8 || m.TakenFen != 17600+21600+38400+12800+8800+8800+5900+3900 || m.KeptFen != 17600+21600 ||
		m.RefundedFen != 38400+12800+8800+8800 || m.Refunds != 6 || m.Held != 2 || m.HeldFen != 5900+3900 {
		t.Errorf("money %+v", m)
	}
	if st.r.ContinuedRuns != 1 {
		t.Errorf("orders that continued as new: %d, want 1 (the refunded order, however many runs)", st.r.ContinuedRuns)
	}
	if st.r.Oversold != 1 || st.r.RefusedByWorkflow != 1 || len(st.r.Stuck) != 0 ||
		st.r.StrayPayments[workflows.StrayRefunded] != 1 || st.r.StrayPayments[workflows.StrayRefundFailed] != 1 {
		t.Errorf("oversold %d, refused %d, stuck %v, strays %v", st.r.Oversold, st.r.RefusedByWorkflow, st.r.Stuck, st.r.StrayPayments)
	}
}

func TestCheckerNamesTheBrokenOrder(t *testing.T) {
	cases := []struct {
		name    string
		order   string // the order the break must name
		check   string
		corrupt func(st *checkState)
		detail  string // what the break must say, where other checks would also catch the corruption
	}{
		{"money kept twice: two orders keep one transaction", "paid", CheckMoney, func(st *checkState) {
			// "completed" < "paid": the second one to claim tx-completed is named.
			st.rows["paid"].txID = "tx-completed"
			st.sim["paid"] = withTx(st.sim["paid"], "tx-completed")
			delete(st.payments, "tx-paid")
		}, ""},
		{"money kept and refunded", "paid", CheckMoney, func(st *checkState) {
			t := st.sim["paid"]
			t.Refunds = []paysim.RefundView{{OutRefundNo: "paid-R1", Status: paysim.RefundSuccess, RefundFen: t.TotalFen}}
			st.sim["paid"] = t
			st.refunds["paid-R1"] = refundRow{outRefundNo: "paid-R1", order: "paid", status: paysim.RefundSuccess, amount: t.TotalFen}
		}, ""},
		{"money neither kept nor returned", "late", CheckMoney, func(st *checkState) {
			t := st.sim["late"]
			t.Refunds = nil
			t.TradeState = paysim.StateSuccess
			st.sim["late"] = t
			delete(st.refunds, "Stx-late")
		}, ""},
		{"refund without a payment", "closed", CheckMoney, func(st *checkState) {
			t := st.sim["closed"]
			t.Refunds = []paysim.RefundView{{OutRefundNo: "closed-R1", Status: paysim.RefundSuccess, RefundFen: t.TotalFen}}
			st.sim["closed"] = t
			st.refunds["closed-R1"] = refundRow{outRefundNo: "closed-R1", order: "closed", status: paysim.RefundSuccess, amount: t.TotalFen}
		}, ""},
		{"refund the shop records and WeChat never made", "noprepay", CheckAgreement, func(st *checkState) {
			st.refunds["noprepay-R1"] = refundRow{outRefundNo: "noprepay-R1", order: "noprepay", status: paysim.RefundSuccess, amount: 12800}
		}, ""},
		{"refund twice", "refunded", CheckMoney, func(st *checkState) {
			t := st.sim["refunded"]
			second := t.Refunds[0]
			second.OutRefundNo = "refunded-R2"
			t.Refunds = append(t.Refunds, second)
			st.sim["refunded"] = t
			st.refunds["refunded-R2"] = refundRow{outRefundNo: "refunded-R2", order: "refunded", txID: t.TransactionID, status: paysim.RefundSuccess, amount: second.RefundFen}
		}, "refunded 2 times"},
		{"refund still processing", "shipref", CheckMoney, func(st *checkState) {
			t := st.sim["shipref"]
			t.Refunds[0].Status = paysim.RefundProcessing
			st.sim["shipref"] = t
		}, ""},
		{"stock deducted twice", "paid", CheckStock, func(st *checkState) {
			st.ledger = append(st.ledger, ledgerRow{id: 99, order: "paid", kind: "DEDUCT", product: pCoffee, qty: 2,
				committed: sql.NullTime{Time: st.now, Valid: true}})
			st.stock[pCoffee] -= 2
		}, ""},
		{"stock restored for an order that keeps its goods", "completed", CheckStock, func(st *checkState) {
			st.ledger = append(st.ledger, ledgerRow{id: 99, order: "completed", kind: "RESTORE", product: pTea, qty: 1,
				committed: sql.NullTime{Time: st.now, Valid: true}})
			st.stock[pTea]++
		}, ""},
		{"stock below zero in the ledger replayed", "refunded", CheckStock, func(st *checkState) {
			// Three teas to begin with: "completed" takes one, "refunded"
			// three more before it puts them back — a dip to −1 that the
			// final figures (3 − 1 = 2) do not show.
			st.initial[pTea] = 3
			st.stock[pTea] = 2
		}, ""},
		{"stock deducted for a closed order", "closed", CheckStock, func(st *checkState) {
			st.ledger = append(st.ledger, ledgerRow{id: 99, order: "closed", kind: "DEDUCT", product: pCoffee, qty: 1,
				committed: sql.NullTime{Time: st.now, Valid: true}})
			st.stock[pCoffee]--
		}, ""},
		{"order stuck PENDING past its deadline", "closed", CheckStuck, func(st *checkState) {
			st.rows["closed"].status = "PENDING"
			st.wf["closed"] = workflowFact{status: running, orderStatus: "PENDING"}
			setListed(st, "closed", running, "PENDING")
			st.sim["closed"] = paysim.TransactionView{OutTradeNo: "closed", TradeState: "NOTPAY", TotalFen: 8800}
			st.records = slices.DeleteFunc(st.records, func(r *orderRecord) bool { return r.No == "closed" })
		}, ""},
		{"the re-ship spent: shipped at WeChat twice", "completed", CheckShipping, func(st *checkState) {
			st.shipping["completed"] = paysim.ShippingView{OrderState: paysim.ShipSettled, Uploads: make([]paysim.ShippingUpload, 2)}
		}, "2 times"},
		{"COMPLETED, but WeChat never had the shipment", "completed", CheckShipping, func(st *checkState) {
			delete(st.shipping, "completed")
		}, "0 shipments"},
		{"WeChat has a shipment of an order never shipped", "paid", CheckShipping, func(st *checkState) {
			st.shipping["paid"] = paysim.ShippingView{OrderState: paysim.ShipShipped, Uploads: make([]paysim.ShippingUpload, 1)}
		}, ""},
		{"the buyer confirmed receipt, the order did not complete", "shipref", CheckPromise, func(st *checkState) {
			for _, r := range st.records {
				if r.No == "shipref" {
					r.ReceiptConfirmed = true
				}
			}
		}, "confirmed receipt"},
		{"order ended, its workflow still running", "completed", CheckStuck, func(st *checkState) {
			st.wf["completed"] = workflowFact{status: running, orderStatus: "COMPLETED"}
		}, ""},
		{"PAID, its workflow still busy", "paid", CheckStuck, func(st *checkState) {
			st.wf["paid"] = workflowFact{status: running, orderStatus: "PAID", pending: 1}
		}, ""},
		{"order without a workflow", "oversold", CheckStuck, func(st *checkState) {
			st.wf["oversold"] = workflowFact{missing: "workflow not found"}
		}, ""},
		{"search attribute of the execution differs from the row", "paid", CheckStuck, func(st *checkState) {
			st.wf["paid"] = workflowFact{status: running, orderStatus: "PENDING"}
		}, ""},
		{"search attribute in visibility differs from the row", "shipref", CheckStuck, func(st *checkState) {
			setListed(st, "shipref", completed, "SHIPPED")
		}, ""},
		{"a workflow listed only as runs that continued as new", "refunded", CheckStuck, func(st *checkState) {
			st.listed = slices.DeleteFunc(st.listed, func(l listedWorkflow) bool {
				return l.id == workflows.WorkflowID("refunded") && l.status != continued
			})
		}, "latest run is missing"},
		{"a workflow without an order row", "ghost", CheckStuck, func(st *checkState) {
			st.listed = append(st.listed, listedWorkflow{id: "order-ghost", status: running, orderStatus: "PENDING"})
		}, ""},
		{"DB and WeChat disagree on a kept order's transaction", "completed", CheckAgreement, func(st *checkState) {
			st.sim["completed"] = withTx(st.sim["completed"], "tx-other")
			st.payments["tx-other"] = paymentRow{txID: "tx-other", order: "completed", amount: 21600}
			delete(st.payments, "tx-completed")
		}, ""},
		{"DB says PAID, WeChat never took the money", "paid", CheckAgreement, func(st *checkState) {
			st.sim["paid"] = paysim.TransactionView{OutTradeNo: "paid", TradeState: "NOTPAY", TotalFen: 17600}
			st.records = slices.DeleteFunc(st.records, func(r *orderRecord) bool { return r.No == "paid" })
		}, ""},
		{"DB says REFUNDED, WeChat kept the money", "oversold", CheckAgreement, func(st *checkState) {
			t := st.sim["oversold"]
			t.TradeState, t.Refunds = paysim.StateSuccess, nil
			st.sim["oversold"] = t
			delete(st.refunds, "oversold-R1")
		}, ""},
		{"DB and WeChat disagree on a refund's status", "refunded", CheckAgreement, func(st *checkState) {
			r := st.refunds["refunded-R1"]
			r.status = paysim.RefundProcessing
			st.refunds["refunded-R1"] = r
		}, ""},
		{"DB and WeChat disagree on a payment's amount", "completed", CheckAgreement, func(st *checkState) {
			p := st.payments["tx-completed"]
			p.amount = 100
			st.payments["tx-completed"] = p
		}, ""},
		{"WeChat took a payment the shop has no row for", "late", CheckAgreement, func(st *checkState) {
			delete(st.payments, "tx-late")
		}, ""},
		{"a flagged order", "closed", CheckStuck, func(st *checkState) {
			st.rows["closed"].flag = workflows.FlagCloseUnconfirmed
		}, ""},
		{"a stray payment that ended REFUND_FAILED, its refund made", "late", CheckMoney, func(st *checkState) {
			v := st.strayViews["stray-payment-tx-late"]
			v.Status = workflows.StrayRefundFailed
			st.strayViews["stray-payment-tx-late"] = v
		}, "WeChat failed no refund"},
		{"a stray payment still running", "", CheckStuck, func(st *checkState) {
			delete(st.strayViews, "stray-payment-tx-late")
			st.strayOpen["stray-payment-tx-late"] = running
		}, "stray-payment-tx-late is"},
		{"refund failed at WeChat, the stray-payment workflow says REFUNDED", "strayfailed", CheckMoney, func(st *checkState) {
			v := st.strayViews["stray-payment-tx-strayfailed"]
			v.Status = workflows.StrayRefunded
			st.strayViews["stray-payment-tx-strayfailed"] = v
		}, "nobody was told"},
		{"refund failed at WeChat, the order says REFUNDED", "refundfailed", CheckMoney, func(st *checkState) {
			st.rows["refundfailed"].status, st.rows["refundfailed"].flag = "REFUNDED", ""
			st.wf["refundfailed"] = workflowFact{status: completed, orderStatus: "REFUNDED"}
			setListed(st, "refundfailed", completed, "REFUNDED")
		}, "nobody was told"},
		{"REFUND_FAILED without the flag", "refundfailed", CheckMoney, func(st *checkState) {
			st.rows["refundfailed"].flag = ""
		}, "nobody was told"},
		{"REFUND_FAILED flagged with something else too", "refundfailed", CheckStuck, func(st *checkState) {
			st.rows["refundfailed"].flag = workflows.FlagRefundFailed + "," + workflows.FlagPaymentMismatch
		}, "flagged"},
		{"REFUND_FAILED not on the admin API's flagged list", "refundfailed", CheckStuck, func(st *checkState) {
			delete(st.flagged, "refundfailed")
		}, "list of flagged orders"},
		{"REFUND_FAILED, WeChat refunded it", "refundfailed", CheckAgreement, func(st *checkState) {
			t := st.sim["refundfailed"]
			t.Refunds[0].Status = paysim.RefundSuccess
			st.sim["refundfailed"] = t
			r := st.refunds["refundfailed-R1"]
			r.status = paysim.RefundSuccess
			st.refunds["refundfailed-R1"] = r
		}, ""},
		{"REFUND_FAILED, its stock put back", "refundfailed", CheckStock, func(st *checkState) {
			st.ledger = append(st.ledger, ledgerRow{id: 99, order: "refundfailed", kind: "RESTORE", product: pCoffee, qty: 1,
				committed: sql.NullTime{Time: st.now, Valid: true}})
			st.stock[pCoffee]++
		}, ""},
		{"a refund failed at WeChat for an order that never asked", "paid", CheckMoney, func(st *checkState) {
			t := st.sim["paid"]
			t.TradeState = paysim.StateRefund
			t.Refunds = []paysim.RefundView{{OutRefundNo: "paid-R1", Status: paysim.RefundClosed, RefundFen: t.TotalFen}}
			st.sim["paid"] = t
			st.refunds["paid-R1"] = refundRow{outRefundNo: "paid-R1", order: "paid", status: paysim.RefundClosed, amount: t.TotalFen}
		}, "nobody was told"},
		{"a refund the API took that did not happen", "paid", CheckPromise, func(st *checkState) {
			for _, r := range st.records {
				if r.No == "paid" {
					r.RefundAsked = true
				}
			}
		}, ""},
		{"a cancel answered CLOSED, the order paid", "closed", CheckPromise, func(st *checkState) {
			st.rows["closed"].status = "PAID"
			st.wf["closed"] = workflowFact{status: running, orderStatus: "PAID"}
			setListed(st, "closed", running, "PAID")
		}, ""},
		{"a payment WeChat took before the close, the order CLOSED", "closed", CheckPromise, func(st *checkState) {
			t := st.sim["closed"]
			t.TransactionID, t.TradeState = "tx-closed", paysim.StateSuccess
			st.sim["closed"] = t
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := settledState()
			tc.corrupt(st)
			breaks := st.run()
			named := false
			for _, b := range breaks {
				if b.Check == tc.check && b.Order == tc.order && strings.Contains(b.Detail, tc.detail) {
					named = true
				}
				if b.Order != "" && b.Order != tc.order {
					t.Errorf("a break names order %s, not the corrupted %s: %s %s", b.Order, tc.order, b.Check, b.Detail)
				}
			}
			if !named {
				t.Errorf("no %s break names order %s (saying %q); breaks:\n%s", tc.check, tc.order, tc.detail, breakLines(breaks))
			}
		})
	}
}

// TestCheckerSaysHowLongAnOrderIsPastItsDeadline: a stuck PENDING order's
// break says it is past its payment deadline (and by how much), and the
// order is listed as stuck.
func TestCheckerSaysHowLongAnOrderIsPastItsDeadline(t *testing.T) {
	st := settledState()
	st.rows["closed"].status = "PENDING"
	st.wf["closed"] = workflowFact{status: running, orderStatus: "PENDING"}
	setListed(st, "closed", running, "PENDING")
	st.sim["closed"] = paysim.TransactionView{OutTradeNo: "closed", TradeState: "NOTPAY", TotalFen: 8800}
	st.records = nil
	breaks := st.run()
	if len(breaks) != 1 || !strings.Contains(breaks[0].Detail, "PENDING 45m0s past its payment deadline") || !slices.Equal(st.r.Stuck, []string{"closed"}) {
		t.Fatalf("stuck %v, breaks:\n%s", st.r.Stuck, breakLines(breaks))
	}
}

func withTx(t paysim.TransactionView, txID string) paysim.TransactionView {
	t.TransactionID = txID
	return t
}

func setListed(st *checkState, no string, status enumspb.WorkflowExecutionStatus, orderStatus string) {
	for i := range st.listed {
		if st.listed[i].id == workflows.WorkflowID(no) {
			st.listed[i].status, st.listed[i].orderStatus = status, orderStatus
		}
	}
}

func breakLines(breaks []Break) string {
	var b strings.Builder
	for _, x := range breaks {
		fmt.Fprintf(&b, "  %s order %q: %s\n", x.Check, x.Order, x.Detail)
	}
	return b.String()
}

// The reconciliation check on the settled state, whose payments no order
// keeps are late's and strayfailed's.
func TestCheckerReconciliation(t *testing.T) {
	clean := func() []ReconciledDay {
		return []ReconciledDay{
			{Date: "2026-11-23", BillRows: 14, MatchedPayments: 8, Explained: map[string]int64{store.DriftStrayPayment: 2}},
			{Date: "2026-11-24"},
		}
	}
	cases := []struct {
		name    string
		days    func() []ReconciledDay
		order   string
		detail  string
		nBreaks int
	}{
		{"no drift, the strays listed apart", clean, "", "", 0},
		{"a refund nobody here asked for", func() []ReconciledDay {
			d := clean()
			d[0].Drift = 1
			d[0].Drifts = []store.ReconcileDrift{{Kind: store.DriftRefundNotInShop, OutTradeNo: "paid", OutRefundNo: "MP1", Note: "by hand"}}
			return d
		}, "paid", "REFUND_NOT_IN_SHOP", 1},
		{"drift not listed", func() []ReconciledDay { d := clean(); d[1].Drift = 2; return d }, "", "2 more drift", 1},
		{"a day without a report", func() []ReconciledDay {
			d := clean()
			d[1].Error = "no report: FAILED bill of 2026-11-24: SHA-1"
			return d
		}, "", "SHA-1", 1},
		{"a stray payment not listed", func() []ReconciledDay {
			d := clean()
			d[0].Explained[store.DriftStrayPayment] = 1
			return d
		}, "", "list 1 stray payments; the database holds 2", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := settledState()
			st.reconcileBreaks(tc.days())
			var ours []Break
			for _, b := range st.r.Breaks {
				if b.Check == CheckReconcile {
					ours = append(ours, b)
				}
			}
			if len(ours) != tc.nBreaks {
				t.Fatalf("%d reconciliation breaks, want %d:\n%s", len(ours), tc.nBreaks, breakLines(ours))
			}
			if tc.nBreaks > 0 && (ours[0].Order != tc.order || !strings.Contains(ours[0].Detail, tc.detail)) {
				t.Errorf("break %+v; want order %q saying %q", ours[0], tc.order, tc.detail)
			}
			if len(st.r.Reconciliation) != 2 {
				t.Errorf("report lists %d days", len(st.r.Reconciliation))
			}
		})
	}
	if days := runDays(time.Date(2026, 11, 23, 15, 59, 0, 0, time.UTC), time.Date(2026, 11, 23, 16, 1, 0, 0, time.UTC)); !slices.Equal(days, []string{"2026-11-23", "2026-11-24"}) {
		t.Errorf("a run across midnight Beijing time covers %v", days)
	}
}

// partsState is settledState plus "parts": a PAID order of two coffees and
// a tea whose tea and one coffee were refunded, each by a refund of its own
// before it shipped (the user's refunds_in_parts requests, both accepted),
// each refund's goods restored once, refunded_fen their sum (issue 18).
func partsState() *checkState {
	st := settledState()
	c := st.checker
	t0 := time.Date(2026, 11, 23, 10, 30, 0, 0, time.UTC)
	const coffee, tea = 8800, 12800
	o := &orderRow{no: "parts", status: "PAID", total: 2*coffee + tea, txID: "tx-parts",
		items: map[int64]int64{pCoffee: 2, pTea: 1}, deadline: t0, refundedFen: tea + coffee}
	c.rows["parts"] = o
	c.wf["parts"] = workflowFact{status: running, orderStatus: "PAID"}
	st.listed = append(st.listed, listedWorkflow{id: workflows.WorkflowID("parts"), status: running, orderStatus: "PAID"})
	c.payments["tx-parts"] = paymentRow{txID: "tx-parts", order: "parts", amount: o.total}
	id := int64(1000)
	add := func(kind string, p, q int64, refundNo string) {
		id++
		c.ledger = append(c.ledger, ledgerRow{id: id, order: "parts", kind: kind, product: p, qty: q, refundNo: refundNo,
			committed: sql.NullTime{Time: t0.Add(time.Duration(id) * time.Second), Valid: true}})
	}
	add("DEDUCT", pCoffee, 2, "")
	add("DEDUCT", pTea, 1, "")
	add("RESTORE", pTea, 1, "parts-R1")
	add("RESTORE", pCoffee, 1, "parts-R2")
	t := paysim.TransactionView{OutTradeNo: "parts", TransactionID: "tx-parts", TradeState: paysim.StateRefund, TotalFen: o.total}
	rec := &orderRecord{No: "parts", Behaviour: BehaviourRefundParts, TotalFen: o.total, SimPaid: true,
		Packages: []string{"prepay_id=wxparts"},
		Lines:    []lineAnswer{{ProductID: pCoffee, UnitPriceFen: coffee, Quantity: 2}, {ProductID: pTea, UnitPriceFen: tea, Quantity: 1}}}
	for i, part := range []struct {
		p, fen int64
	}{{pTea, tea}, {pCoffee, coffee}} {
		no := fmt.Sprintf("parts-R%d", i+1)
		t.Refunds = append(t.Refunds, paysim.RefundView{OutRefundNo: no, OutTradeNo: "parts", TransactionID: "tx-parts",
			Status: paysim.RefundSuccess, RefundFen: part.fen, TotalFen: o.total,
			Goods: []paysim.RefundGoods{{MerchantGoodsID: fmt.Sprint(part.p), UnitPrice: part.fen, RefundAmount: part.fen, RefundQuantity: 1}}})
		c.refunds[no] = refundRow{outRefundNo: no, order: "parts", txID: "tx-parts", status: paysim.RefundSuccess, amount: part.fen,
			items: map[int64]int64{part.p: 1}}
		rec.Parts = append(rec.Parts, partAsk{By: "user", Reason: fmt.Sprintf("chaos: part %d", i+1), Items: map[int64]int64{part.p: 1},
			Outcome: partAccepted, OutRefundNo: no, Fen: part.fen, Goods: map[int64]int64{part.p: 1}})
	}
	c.sim["parts"] = t
	c.records = append(c.records, rec)
	slices.SortFunc(c.records, func(a, b *orderRecord) int { return strings.Compare(a.No, b.No) })
	c.stock[pCoffee]-- // one coffee of the order is still out
	return st
}

// addRefund adds a refund of order no at WeChat and its row, as SettleRefund
// leaves them (refunded_fen recounted on SUCCESS).
func (st *checkState) addRefund(no, outRefundNo, refundStatus string, fen int64, goods map[int64]int64) {
	t := st.sim[no]
	rf := paysim.RefundView{OutRefundNo: outRefundNo, OutTradeNo: no, TransactionID: t.TransactionID, Status: refundStatus,
		RefundFen: fen, TotalFen: t.TotalFen}
	for _, p := range slices.Sorted(maps.Keys(goods)) {
		rf.Goods = append(rf.Goods, paysim.RefundGoods{MerchantGoodsID: fmt.Sprint(p), RefundQuantity: goods[p]})
	}
	t.Refunds = append(t.Refunds, rf)
	t.TradeState = paysim.StateRefund
	st.sim[no] = t
	st.refunds[outRefundNo] = refundRow{outRefundNo: outRefundNo, order: no, txID: t.TransactionID, status: refundStatus, amount: fen, items: goods}
	if refundStatus == paysim.RefundSuccess {
		st.rows[no].refundedFen += fen
	}
}

func TestCheckerHoldsPartRefunds(t *testing.T) {
	// The last coffee's refund failed at WeChat: the order stays PAID,
	// flagged, the coffee's money held for a person (seen in a chaos run).
	failed := partsState()
	failed.rows["parts"].flag = workflows.FlagRefundFailed
	failed.flagged["parts"] = true
	failed.addRefund("parts", "parts-R3", paysim.RefundAbnormal, 8800, map[int64]int64{pCoffee: 1})
	rec := failed.records[slices.IndexFunc(failed.records, func(r *orderRecord) bool { return r.No == "parts" })]
	rec.Parts = append(rec.Parts, partAsk{By: "admin", Items: map[int64]int64{pCoffee: 1}, Outcome: partAccepted,
		OutRefundNo: "parts-R3", Fen: 8800, Goods: map[int64]int64{pCoffee: 1}})
	if breaks := failed.run(); len(breaks) != 0 {
		t.Fatalf("an order whose last part failed at WeChat, flagged, gave breaks:\n%s", breakLines(breaks))
	}
	if m := failed.r.Money; m.KeptFen != 17600+21600 || m.HeldFen != 5900+3900+8800 {
		t.Errorf("money %+v: the failed part's coffee is held, nothing of the order kept", m)
	}
	st := partsState()
	if breaks := st.run(); len(breaks) != 0 {
		t.Fatalf("an order refunded in two parts, as it should be, gave breaks:\n%s", breakLines(breaks))
	}
	m := st.r.Money
	if m.KeptFen != 17600+21600+8800 || m.RefundedFen != 38400+12800+8800+8800+12800+8800 || m.Refunds != 8 {
		t.Errorf("money %+v: the parts order keeps one coffee, its two refunds returned", m)
	}
	if st.r.PartRefunds[SeenPartRefunded] != 1 {
		t.Errorf("part refunds seen: %v", st.r.PartRefunds)
	}
}

// Each corruption of partsState must give a break of its check naming
// order "parts" — and none naming another order.
func TestCheckerNamesTheOrderOfABrokenPartRefund(t *testing.T) {
	cases := []struct {
		name    string
		check   string
		detail  string
		corrupt func(st *checkState)
	}{
		{"refunded_fen not the sum of its refunds", CheckMoney, "refunded_fen says ¥116.00", func(st *checkState) {
			st.rows["parts"].refundedFen -= 10000
		}},
		{"a part restored twice", CheckStock, "restores product 1 twice", func(st *checkState) {
			l := st.ledger[len(st.ledger)-1]
			l.id += 100
			st.ledger = append(st.ledger, l)
			st.stock[pCoffee]++
		}},
		{"refunds over the paid amount", CheckMoney, "more than was paid", func(st *checkState) {
			// A third refund of everything bought, as if nothing had been:
			// goods and amount consistent, so only the sum tells.
			st.addRefund("parts", "parts-R3", paysim.RefundSuccess, 2*8800+12800, map[int64]int64{pCoffee: 2, pTea: 1})
		}},
		{"a whole-order refund besides its parts", CheckMoney, "one of them the whole payment", func(st *checkState) {
			st.addRefund("parts", "parts-R3", paysim.RefundSuccess, 8800, nil)
		}},
		{"WeChat returned other goods than the row says", CheckMoney, "refund parts-R2", func(st *checkState) {
			t := st.sim["parts"]
			t.Refunds[1].Goods[0].MerchantGoodsID = fmt.Sprint(pTea)
			st.sim["parts"] = t
		}},
		{"every item refunded, the order still PAID", CheckMoney, "every item was", func(st *checkState) {
			st.addRefund("parts", "parts-R3", paysim.RefundSuccess, 8800, map[int64]int64{pCoffee: 1})
			st.ledger = append(st.ledger, ledgerRow{id: 3000, order: "parts", kind: "RESTORE", product: pCoffee, qty: 1, refundNo: "parts-R3",
				committed: sql.NullTime{Time: time.Date(2026, 11, 23, 11, 0, 0, 0, time.UTC), Valid: true}})
			st.stock[pCoffee]++
		}},
		{"REFUNDED with a coffee not refunded", CheckMoney, "neither kept nor returned", func(st *checkState) {
			st.rows["parts"].status = "REFUNDED"
			st.wf["parts"] = workflowFact{status: completed, orderStatus: "REFUNDED"}
			setListed(st, "parts", completed, "REFUNDED")
		}},
		{"a part WeChat failed and the rest refunded, held for a person over the paid amount", CheckMoney, "more than was paid", func(st *checkState) {
			st.rows["parts"].flag = workflows.FlagRefundFailed
			st.flagged["parts"] = true
			st.addRefund("parts", "parts-R3", paysim.RefundAbnormal, 8800+12800, map[int64]int64{pCoffee: 1, pTea: 1})
		}},
		{"a part WeChat failed, the order not flagged", CheckMoney, "nobody was told", func(st *checkState) {
			st.addRefund("parts", "parts-R3", paysim.RefundAbnormal, 8800, map[int64]int64{pCoffee: 1})
		}},
		{"a part the API accepted that WeChat never had", CheckPromise, "WeChat never had it", func(st *checkState) {
			rec := st.records[slices.IndexFunc(st.records, func(r *orderRecord) bool { return r.No == "parts" })]
			rec.Parts = append(rec.Parts, partAsk{By: "admin", Items: map[int64]int64{pCoffee: 1}, Outcome: partAccepted,
				OutRefundNo: "parts-R3", Fen: 8800, Goods: map[int64]int64{pCoffee: 1}})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := partsState()
			tc.corrupt(st)
			breaks := st.run()
			named := false
			for _, b := range breaks {
				if b.Check == tc.check && b.Order == "parts" && strings.Contains(b.Detail, tc.detail) {
					named = true
				}
				if b.Order != "" && b.Order != "parts" {
					t.Errorf("a break names order %s, not the corrupted parts: %s %s", b.Order, b.Check, b.Detail)
				}
			}
			if !named {
				t.Errorf("no %s break names order parts (saying %q); breaks:\n%s", tc.check, tc.detail, breakLines(breaks))
			}
		})
	}
}

func stockBreaks(st *checkState) []Break {
	st.stockCheck()
	return st.r.Breaks
}

func TestStockCheckTakesEachPartRefundsRestorationOnce(t *testing.T) {
	if breaks := stockBreaks(partsState()); len(breaks) != 0 {
		t.Fatalf("part refunds restored once each gave breaks:\n%s", breakLines(breaks))
	}
	for _, tt := range []struct {
		name    string
		corrupt func(st *checkState)
	}{
		{"a refund restoring twice", func(st *checkState) {
			l := st.ledger[len(st.ledger)-1]
			l.id++
			st.ledger = append(st.ledger, l)
			st.stock[pCoffee]++
		}},
		{"a restoration for a refund WeChat did not make", func(st *checkState) {
			r := st.refunds["parts-R2"]
			r.status = paysim.RefundAbnormal
			st.refunds["parts-R2"] = r
		}},
		{"a restoration of other goods than the refund's", func(st *checkState) {
			r := st.refunds["parts-R1"]
			r.items = map[int64]int64{pCoffee: 1}
			st.refunds["parts-R1"] = r
		}},
		{"more restored than deducted", func(st *checkState) {
			st.ledger = append(st.ledger, ledgerRow{id: 2000, order: "parts", kind: "RESTORE", product: pTea, qty: 1, refundNo: "parts-R3",
				committed: sql.NullTime{Time: time.Now(), Valid: true}})
			st.refunds["parts-R3"] = refundRow{outRefundNo: "parts-R3", order: "parts", status: paysim.RefundSuccess, amount: 12800, items: map[int64]int64{pTea: 1}}
			st.stock[pTea]++
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := partsState()
			tt.corrupt(st)
			breaks := stockBreaks(st)
			if len(breaks) == 0 {
				t.Fatal("no break")
			}
			for _, b := range breaks {
				if b.Check != CheckStock || (b.Order != "parts" && b.Order != "") {
					t.Errorf("break %+v; want the stock check, naming order parts", b)
				}
			}
		})
	}
}
