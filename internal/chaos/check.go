package chaos

import (
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/workflows"
)

// The invariants a chaos run must leave standing, checked over the plain
// state load.go reads from the settled stack.

// Checks, as named in a Break.
const (
	CheckMoney     = "money"     // every fen WeChat took is kept by one order or returned in full
	CheckStock     = "stock"     // stock moved only for orders that keep their goods, never below zero
	CheckStuck     = "stuck"     // every order ended or legitimately waits, its workflow with it
	CheckAgreement = "agreement" // the database and WeChat (the simulator) tell the same story
	CheckPromise   = "promise"   // what the API told a payer came true
	// CheckShipping: every order shipped here is shipped at WeChat (its
	// shipping management) exactly once — never twice, so the one re-ship
	// WeChat allows is left unused — and nothing else is.
	CheckShipping = "shipping"
	// CheckReconcile: WeChat's trade bill of every day of the run,
	// reconciled through the API as the shop does each morning, shows no
	// unexplained drift and lists apart exactly the payments no order keeps.
	CheckReconcile = "reconciliation"
)

// Break is one invariant that does not hold.
type Break struct {
	Check  string `json:"check"`
	Order  string `json:"order,omitempty"`
	Detail string `json:"detail"`
	// History is an excerpt of the order workflow's history (for the first
	// few broken orders).
	History []string `json:"history,omitempty"`
}

type orderRow struct {
	no, status, txID, flag string
	total                  int64
	shipped                bool
	deadline               time.Time
	items                  map[int64]int64 // product → quantity
	// refundedFen is orders.refunded_fen: the sum of its SUCCESS refunds.
	refundedFen int64
}

type ledgerRow struct {
	id           int64
	order, kind  string
	product, qty int64
	committed    sql.NullTime
	// refundNo is the part refund a RESTORE row puts back ("" for a
	// DEDUCT and a whole order's restoration).
	refundNo string
}

type paymentRow struct {
	txID, order string
	amount      int64
}

type refundRow struct {
	outRefundNo, order, txID, status string
	amount                           int64
	// items are a part refund's goods, product → quantity (nil: the
	// whole order's refund).
	items map[int64]int64
}

// workflowFact is an order workflow as Temporal describes it.
type workflowFact struct {
	missing     string // why it could not be described ("" when it was)
	status      enumspb.WorkflowExecutionStatus
	orderStatus string // its OrderStatus search attribute
	pending     int    // activities pending
	taskPending bool   // a workflow task scheduled or running
}

// listedWorkflow is a row of a visibility listing (what the Web UI filters).
type listedWorkflow struct {
	id          string
	status      enumspb.WorkflowExecutionStatus
	orderStatus string
}

// checker holds what the checks read: load, describeWorkflows, loadStrays
// and loadFlagged (load.go) fill it from the settled stack (h), and the
// checks in this file — money, agreement, stockCheck, orderWorkflows,
// visibilityBreaks, strayChecks, promises — read only these plain fields,
// so a test can feed them a state made by hand.
type checker struct {
	h        *harness
	r        *Report
	now      time.Time
	rows     map[string]*orderRow
	stock    map[int64]int64
	initial  map[int64]int64 // stock of every product at the start
	ledger   []ledgerRow
	payments map[string]paymentRow
	refunds  map[string]refundRow
	sim      map[string]paysim.TransactionView
	shipping map[string]paysim.ShippingView // WeChat's shipping view, by order no (paid ones)
	wf       map[string]workflowFact        // order no → its workflow
	records  []*orderRecord                 // what the payers did and were told, by order no
	// Stray-payment workflows by id: completed (with their result) and not.
	strayViews map[string]workflows.StrayPaymentView
	strayOpen  map[string]enumspb.WorkflowExecutionStatus
	flagged    map[string]bool // orders on the admin API's list of flagged orders
}

func newChecker() *checker {
	return &checker{r: &Report{ByStatus: map[string]int{}, ByBehaviour: map[string]map[string]int{}, StrayPayments: map[string]int{}, PartRefunds: map[string]int{},
		Breaks: []Break{}, Stuck: []string{}}}
}

func (c *checker) fail(check, order, format string, args ...any) {
	c.r.Breaks = append(c.r.Breaks, Break{Check: check, Order: order, Detail: fmt.Sprintf(format, args...)})
}

func kept(s string) bool { return status.Order(s).Kept() }

// failedAtWechat: a refund WeChat took and then failed — ABNORMAL (the
// payer's account cannot take it) or CLOSED. The money was not returned; a
// person must (OPERATIONS.md §4).
func failedAtWechat(status string) bool {
	return status == paysim.RefundAbnormal || status == paysim.RefundClosed
}

func hasOnlyFlag(flags, flag string) bool {
	for _, f := range strings.Split(flags, ",") {
		if strings.TrimSpace(f) != flag {
			return false
		}
	}
	return true
}

// isOrderRefund reports whether out_refund_no is one of order no's refunds
// (<order_no>-R<n>), not a stray payment's (S<transaction_id>).
func isOrderRefund(no, outRefundNo string) bool { return strings.HasPrefix(outRefundNo, no+"-R") }

// orderRefundFailed reports whether WeChat failed one of order no's refunds.
func (c *checker) orderRefundFailed(no string) bool {
	for _, rf := range c.sim[no].Refunds {
		if isOrderRefund(no, rf.OutRefundNo) && failedAtWechat(rf.Status) {
			return true
		}
	}
	return false
}

// strayRefundFailed reports whether WeChat failed the refund of transaction
// t's stray payment.
func (c *checker) strayRefundFailed(t paysim.TransactionView) bool {
	for _, rf := range t.Refunds {
		if t.TransactionID != "" && rf.OutRefundNo == workflows.StrayRefundNo(t.TransactionID) && failedAtWechat(rf.Status) {
			return true
		}
	}
	return false
}

// heldForAPerson reports whether a refund WeChat failed was handed to a
// person as promised: an order's refund leaves the order REFUND_FAILED and
// flagged REFUND_FAILED (and nothing else); a stray payment's refund ends
// its stray-payment workflow REFUND_FAILED. Either is what an operator
// watches (§4 of OPERATIONS.md); anything else loses the money silently.
func (c *checker) heldForAPerson(no, txID string, rf paysim.RefundView) bool {
	switch {
	case isOrderRefund(no, rf.OutRefundNo):
		o := c.rows[no]
		if o == nil || !hasOnlyFlag(o.flag, workflows.FlagRefundFailed) {
			return false
		}
		// A part refund that failed leaves the order in its status,
		// flagged (issue 18): its goods stay committed, never refunded twice.
		part := c.refunds[rf.OutRefundNo].items != nil
		return o.status == string(status.RefundFailed) || (kept(o.status) && part)
	case txID != "" && rf.OutRefundNo == workflows.StrayRefundNo(txID):
		v, ok := c.strayViews[workflows.StrayPaymentWorkflowID(txID)]
		return ok && v.Status == workflows.StrayRefundFailed
	}
	return false
}

// money: every transaction WeChat took is kept by exactly one order in
// PAID/SHIPPED/COMPLETED, or refunded in full, or — its refund failed at
// WeChat — held for a person (the order REFUND_FAILED and flagged, or the
// stray payment's workflow REFUND_FAILED). Per refund (issue 18): each
// SUCCESS refund of an order at WeChat is a refunds row of the same amount
// and goods; a whole-order refund is the only one of its order; the
// order's refunds return at most what was paid; orders.refunded_fen is the
// sum of its SUCCESS refunds; an order is REFUNDED if and only if all of
// it was. A kept order keeps what its part refunds left of its total (a
// part WeChat failed is held for a person, the order flagged). And
// sum(taken) − sum(refunded) = sum(kept) + sum(held).
func (c *checker) money() {
	m := &c.r.Money
	byTx := map[string]string{}
	for _, no := range sortedKeys(c.rows) {
		o := c.rows[no]
		if o.txID == "" {
			continue
		}
		if other, dup := byTx[o.txID]; dup {
			c.fail(CheckMoney, no, "transaction %s is also order %s's", o.txID, other)
			continue
		}
		byTx[o.txID] = no
	}
	// What a kept order's part refunds took out of its total: returned, or
	// held for a person.
	partsOut := map[string]int64{}
	for _, no := range sortedKeys(c.sim) {
		t := c.sim[no]
		o := c.rows[no]
		if o == nil {
			c.fail(CheckMoney, no, "WeChat has a transaction (%s) for an order the shop has no row for", t.TradeState)
			continue
		}
		if t.TotalFen != o.total {
			c.fail(CheckMoney, no, "the prepay asked %s, the order is %s", fen(t.TotalFen), fen(o.total))
		}
		paid := t.TransactionID != ""
		var refunded, orderRefunded, heldParts int64
		successes, wholes := 0, 0
		held := false
		refundedGoods := map[int64]int64{}
		for _, rf := range t.Refunds {
			m.Refunds++
			if !paid {
				c.fail(CheckMoney, no, "refund %s of an order WeChat never took money for", rf.OutRefundNo)
			}
			ours := isOrderRefund(no, rf.OutRefundNo)
			switch {
			case rf.Status == paysim.RefundSuccess:
				refunded += rf.RefundFen
				successes++
				if ours {
					orderRefunded += rf.RefundFen
					row, ok := c.refunds[rf.OutRefundNo]
					goods := simGoods(rf)
					switch {
					case !ok:
						c.fail(CheckMoney, no, "WeChat returned %s by refund %s; the shop has no row for it", fen(rf.RefundFen), rf.OutRefundNo)
					case row.order != no || row.amount != rf.RefundFen || !sameGoods(row.items, goods):
						c.fail(CheckMoney, no, "refund %s: WeChat returned %s for goods %v, the shop's row says %s for goods %v of order %s",
							rf.OutRefundNo, fen(rf.RefundFen), goods, fen(row.amount), row.items, row.order)
					}
					if ok && row.items == nil {
						wholes++
					}
					for p, q := range goods {
						refundedGoods[p] += q
					}
				}
			case failedAtWechat(rf.Status) && c.heldForAPerson(no, t.TransactionID, rf):
				held = true
				if kept(o.status) {
					heldParts += rf.RefundFen
				}
			case failedAtWechat(rf.Status):
				c.fail(CheckMoney, no, "refund %s is %s at WeChat, but the order is %s (flag %q): nobody was told to return the money",
					rf.OutRefundNo, rf.Status, o.status, o.flag)
			default:
				c.fail(CheckMoney, no, "refund %s is %s after the run settled", rf.OutRefundNo, rf.Status)
			}
		}
		if successes > 1 && (wholes > 0 || !isOrderRefundsOnly(no, t)) {
			c.fail(CheckMoney, no, "refunded %d times (%s in all), one of them the whole payment", successes, fen(refunded))
		}
		if refunded > t.TotalFen {
			c.fail(CheckMoney, no, "refunded %s of the %s paid: more than was paid", fen(refunded), fen(t.TotalFen))
		}
		if o.refundedFen != orderRefunded {
			c.fail(CheckMoney, no, "refunded_fen says %s, its SUCCESS refunds at WeChat returned %s", fen(o.refundedFen), fen(orderRefunded))
		}
		if !paid {
			if kept(o.status) {
				c.fail(CheckMoney, no, "the order is %s but WeChat never took its money (trade_state %s)", o.status, t.TradeState)
			}
			continue
		}
		m.Transactions++
		m.TakenFen += t.TotalFen
		m.RefundedFen += refunded
		switch {
		case kept(o.status):
			// Part refunds leave the rest kept; all of it refunded is REFUNDED.
			if refunded != orderRefunded {
				c.fail(CheckMoney, no, "the order keeps transaction %s (%s) but %s of it was refunded other than by its refunds", t.TransactionID, o.status, fen(refunded-orderRefunded))
			}
			// A part WeChat failed keeps its goods (a person returns the
			// money): the order stays in its status, flagged, even when
			// the other parts returned the rest.
			switch {
			case refunded > 0 && refunded >= t.TotalFen:
				c.fail(CheckMoney, no, "the order is %s but %s of its %s was refunded: every item was", o.status, fen(refunded), fen(t.TotalFen))
			case refunded+heldParts > t.TotalFen:
				c.fail(CheckMoney, no, "the order is %s; %s of its %s was refunded and %s is held for a person: more than was paid", o.status, fen(refunded), fen(t.TotalFen), fen(heldParts))
			}
			if o.txID != t.TransactionID {
				c.fail(CheckMoney, no, "the order (%s) keeps transaction %q, WeChat took %s", o.status, o.txID, t.TransactionID)
			}
			partsOut[no] = refunded + heldParts
			if heldParts > 0 {
				m.Held++
				m.HeldFen += heldParts
			}
		case refunded == t.TotalFen:
			// REFUNDED by its parts: their goods are every item bought.
			if wholes == 0 && successes > 0 && isOrderRefundsOnly(no, t) && !sameGoods(refundedGoods, o.items) {
				c.fail(CheckMoney, no, "refunded in %d parts of goods %v, but the order bought %v", successes, refundedGoods, o.items)
			}
		case refunded == 0 && held:
			m.Held++
			m.HeldFen += t.TotalFen
		default:
			c.fail(CheckMoney, no, "WeChat took %s (transaction %s); the order is %s and %s was refunded: the money is neither kept nor returned",
				fen(t.TotalFen), t.TransactionID, o.status, fen(refunded))
		}
	}
	for _, no := range sortedKeys(c.rows) {
		if o := c.rows[no]; kept(o.status) {
			m.KeptFen += o.total - partsOut[no]
			if _, ok := c.sim[no]; !ok {
				c.fail(CheckMoney, no, "the order is %s but WeChat never heard of it", o.status)
			}
		} else if _, ok := c.sim[no]; !ok && o.refundedFen != 0 {
			c.fail(CheckMoney, no, "refunded_fen says %s, but WeChat never heard of the order", fen(o.refundedFen))
		}
	}
	if m.TakenFen-m.RefundedFen != m.KeptFen+m.HeldFen {
		c.fail(CheckMoney, "", "taken %s − refunded %s = %s, but the kept orders keep %s and %s is held for a person",
			fen(m.TakenFen), fen(m.RefundedFen), fen(m.TakenFen-m.RefundedFen), fen(m.KeptFen), fen(m.HeldFen))
	}
}

// isOrderRefundsOnly reports whether every refund of transaction t is one
// of order no's own (none a stray payment's).
func isOrderRefundsOnly(no string, t paysim.TransactionView) bool {
	for _, rf := range t.Refunds {
		if !isOrderRefund(no, rf.OutRefundNo) {
			return false
		}
	}
	return true
}

// simGoods is a refund's goods_detail at WeChat, product → quantity (nil:
// it gave none, the whole order's refund).
func simGoods(rf paysim.RefundView) map[int64]int64 {
	if len(rf.Goods) == 0 {
		return nil
	}
	out := map[int64]int64{}
	for _, g := range rf.Goods {
		p, err := strconv.ParseInt(g.MerchantGoodsID, 10, 64)
		if err != nil {
			p = -1 // not one of ours: matches no row
		}
		out[p] += g.RefundQuantity
	}
	return out
}

// sameGoods: the same products in the same quantities (nil and empty
// alike: no goods).
func sameGoods(a, b map[int64]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// agreement: the database's payment state of every order is WeChat's.
func (c *checker) agreement() {
	for _, no := range sortedKeys(c.rows) {
		o := c.rows[no]
		t, atWechat := c.sim[no]
		var refunded int64
		for _, rf := range t.Refunds {
			if rf.Status == paysim.RefundSuccess {
				refunded += rf.RefundFen
			}
		}
		switch {
		case kept(o.status):
			// WeChat's trade_state turns REFUND at the first refund, of
			// some items too.
			state := paysim.StateSuccess
			if len(t.Refunds) > 0 {
				state = paysim.StateRefund
			}
			if !atWechat || t.TradeState != state || t.TransactionID != o.txID {
				c.fail(CheckAgreement, no, "the shop says %s (transaction %q), WeChat says %s (transaction %q)", o.status, o.txID, t.TradeState, t.TransactionID)
			}
		case o.status == "REFUNDED":
			if !atWechat || t.TradeState != paysim.StateRefund || refunded != t.TotalFen || t.TransactionID != o.txID {
				c.fail(CheckAgreement, no, "the shop says REFUNDED (transaction %q), WeChat says %s with %s of %s refunded (transaction %q)",
					o.txID, t.TradeState, fen(refunded), fen(t.TotalFen), t.TransactionID)
			}
		case o.status == "CLOSED":
			switch {
			case !atWechat, t.TradeState == paysim.StateClosed:
			case t.TradeState == paysim.StateRefund && refunded == t.TotalFen:
				// Money that came as it closed, returned by a stray-payment workflow.
			case t.TradeState == paysim.StateRefund && refunded == 0 && c.strayRefundFailed(t):
				// ... whose refund WeChat failed: held for a person (money).
			default:
				c.fail(CheckAgreement, no, "the shop says CLOSED, WeChat says %s (%s refunded of %s)", t.TradeState, fen(refunded), fen(t.TotalFen))
			}
		case o.status == string(status.RefundFailed):
			// Only a refund WeChat took and failed may leave an order so.
			switch {
			case !atWechat || t.TransactionID != o.txID || refunded != 0 || !c.orderRefundFailed(no):
				c.fail(CheckAgreement, no, "the shop says REFUND_FAILED (transaction %q), WeChat says %s (transaction %q), %s of %s refunded, no refund of the order failed",
					o.txID, t.TradeState, t.TransactionID, fen(refunded), fen(t.TotalFen))
			case !c.flagged[no]:
				c.fail(CheckStuck, no, "REFUND_FAILED and flagged, but not on the admin API's list of flagged orders")
			}
		}
		// A flag means a person must act: only REFUND_FAILED, for a refund
		// WeChat failed (a fault the run injects), may be left so.
		// So may a kept order one of whose part refunds WeChat failed.
		partFailed := kept(o.status) && c.orderRefundFailed(no)
		switch {
		case o.flag != "" && (o.status != string(status.RefundFailed) && !partFailed || !hasOnlyFlag(o.flag, workflows.FlagRefundFailed)):
			c.fail(CheckStuck, no, "flagged %q: needs a person (status %s)", o.flag, o.status)
		case partFailed && o.flag == "":
			c.fail(CheckStuck, no, "a part refund failed at WeChat, but the order (%s) is not flagged", o.status)
		case partFailed && !c.flagged[no]:
			c.fail(CheckStuck, no, "a part refund failed and the order is flagged, but not on the admin API's list of flagged orders")
		}
	}
	// Every payment WeChat took is recorded, and nothing else is.
	for _, no := range sortedKeys(c.sim) {
		t := c.sim[no]
		if t.TransactionID == "" {
			continue
		}
		p, ok := c.payments[t.TransactionID]
		switch {
		case !ok:
			c.fail(CheckAgreement, no, "WeChat took transaction %s; the shop has no payment row for it", t.TransactionID)
		case p.order != no || p.amount != t.TotalFen:
			c.fail(CheckAgreement, no, "payment %s is recorded for order %s, %s; WeChat: order %s, %s", t.TransactionID, p.order, fen(p.amount), no, fen(t.TotalFen))
		}
		for _, rf := range t.Refunds {
			row, ok := c.refunds[rf.OutRefundNo]
			switch {
			case !ok:
				c.fail(CheckAgreement, no, "WeChat has refund %s; the shop has no row for it", rf.OutRefundNo)
			case row.status != rf.Status || row.amount != rf.RefundFen || row.order != no || !sameGoods(row.items, simGoods(rf)):
				c.fail(CheckAgreement, no, "refund %s: the shop says %s %s of %v for order %s, WeChat says %s %s of %v",
					rf.OutRefundNo, row.status, fen(row.amount), row.items, row.order, rf.Status, fen(rf.RefundFen), simGoods(rf))
			}
		}
	}
	for _, txID := range sortedKeys(c.payments) {
		p := c.payments[txID]
		if t, ok := c.sim[p.order]; !ok || t.TransactionID != txID {
			c.fail(CheckAgreement, p.order, "the shop recorded payment %s that WeChat does not know", txID)
		}
	}
	simRefunds := map[string]bool{}
	for _, t := range c.sim {
		for _, rf := range t.Refunds {
			simRefunds[rf.OutRefundNo] = true
		}
	}
	for _, no := range sortedKeys(c.refunds) {
		if x := c.refunds[no]; !simRefunds[no] {
			c.fail(CheckAgreement, x.order, "the shop has refund %s (%s) that WeChat does not know", no, x.status)
		}
	}
}

// stockCheck: for each product, initial − current = the quantities of the
// orders whose goods left the shelf (kept orders, orders refunded after they
// shipped, and REFUND_FAILED orders that were deducted: their stock is not
// restored, a person decides); the ledger, replayed in commit order, never
// takes stock below zero and ends at the current stock; every order's
// ledger rows match its fate.
func (c *checker) stockCheck() {
	// Replay.
	level := map[int64]int64{}
	for p, s := range c.initial {
		level[p] = s
	}
	perOrder := map[string]map[string]map[int64]int64{} // order → kind → product → qty
	for _, l := range c.ledger {
		if !l.committed.Valid {
			c.fail(CheckStock, l.order, "ledger row %d has no commit time (track_commit_timestamp off?)", l.id)
		}
		switch l.kind {
		case "DEDUCT":
			level[l.product] -= l.qty
			if level[l.product] < 0 {
				c.fail(CheckStock, l.order, "ledger row %d takes product %d to %d", l.id, l.product, level[l.product])
			}
		case "RESTORE":
			level[l.product] += l.qty
		default:
			c.fail(CheckStock, l.order, "ledger row %d has kind %q", l.id, l.kind)
		}
		if perOrder[l.order] == nil {
			perOrder[l.order] = map[string]map[int64]int64{}
		}
		if perOrder[l.order][l.kind] == nil {
			perOrder[l.order][l.kind] = map[int64]int64{}
		}
		perOrder[l.order][l.kind][l.product] += l.qty
	}
	for p, cur := range c.stock {
		if level[p] != cur {
			c.fail(CheckStock, "", "product %d: the ledger replayed ends at %d, the stock is %d", p, level[p], cur)
		}
	}
	same := func(a, b map[int64]int64) bool {
		if len(a) != len(b) {
			return false
		}
		for k, v := range a {
			if b[k] != v {
				return false
			}
		}
		return true
	}
	// Part refunds (issue 18): each RESTORE row of a refund puts back that
	// refund's goods, once, and only a refund WeChat made; an order never
	// gets back more than it took.
	parts := map[string]map[int64]int64{} // order → product → restored by its part refunds
	seenPart := map[string]bool{}
	for _, l := range c.ledger {
		if l.kind != "RESTORE" || l.refundNo == "" {
			continue
		}
		key := fmt.Sprintf("%s/%s/%d", l.order, l.refundNo, l.product)
		rf, ok := c.refunds[l.refundNo]
		switch {
		case seenPart[key]:
			c.fail(CheckStock, l.order, "refund %s restores product %d twice", l.refundNo, l.product)
		case !ok || rf.order != l.order || !isOrderRefund(l.order, l.refundNo):
			c.fail(CheckStock, l.order, "ledger row %d restores for refund %s, which is not one of the order's", l.id, l.refundNo)
		case rf.status != paysim.RefundSuccess:
			c.fail(CheckStock, l.order, "ledger row %d restores for refund %s, which is %s", l.id, l.refundNo, rf.status)
		case rf.items[l.product] != l.qty:
			c.fail(CheckStock, l.order, "ledger row %d restores %d of product %d for refund %s, which returned %d", l.id, l.qty, l.product, l.refundNo, rf.items[l.product])
		}
		seenPart[key] = true
		if parts[l.order] == nil {
			parts[l.order] = map[int64]int64{}
		}
		parts[l.order][l.product] += l.qty
	}
	for no, byProduct := range perOrder {
		for p, r := range byProduct["RESTORE"] {
			if d := byProduct["DEDUCT"][p]; r > d {
				c.fail(CheckStock, no, "product %d: %d restored, %d deducted", p, r, d)
			}
		}
	}
	out := map[int64]int64{}
	for _, o := range c.rows {
		refundFailed := o.status == string(status.RefundFailed) && same(perOrder[o.no]["DEDUCT"], o.items)
		if kept(o.status) || (o.status == "REFUNDED" && o.shipped) || refundFailed {
			for p, q := range o.items {
				// Less what its part refunds put back (before it shipped).
				out[p] += q - parts[o.no][p]
			}
		}
	}
	for p, initial := range c.initial {
		cur, ok := c.stock[p]
		if !ok {
			c.fail(CheckStock, "", "product %d is gone", p)
			continue
		}
		if initial-cur != out[p] {
			c.fail(CheckStock, "", "product %d: %d at the start, %d now (%d out), but the orders that keep goods hold %d",
				p, initial, cur, initial-cur, out[p])
		}
	}
	for _, no := range sortedKeys(c.rows) {
		o := c.rows[no]
		d, r := perOrder[no]["DEDUCT"], perOrder[no]["RESTORE"]
		ok := true
		// Restorations of part refunds are checked above, against their
		// refunds; the whole order's are the order's fate.
		whole := map[int64]int64{}
		for p, q := range r {
			if q -= parts[no][p]; q != 0 {
				whole[p] = q
			}
		}
		switch {
		case kept(o.status), o.status == "REFUNDED" && o.shipped:
			ok = same(d, o.items) && len(whole) == 0
		case o.status == "REFUNDED":
			// Refunded before shipping: deducted and put back (as a whole,
			// or by its part refunds) — or, oversold, never deducted.
			ok = (same(d, o.items) && same(r, o.items)) || (len(d) == 0 && len(r) == 0)
			if len(d) == 0 {
				c.r.Oversold++
			}
		case o.status == "CLOSED":
			ok = len(d) == 0 && len(r) == 0
		case o.status == string(status.RefundFailed):
			// The refund failed: nothing is put back — deducted, or
			// (oversold, never shipped) never deducted.
			ok = (same(d, o.items) && len(r) == 0) || (len(d) == 0 && len(r) == 0 && !o.shipped)
		}
		if !ok {
			c.fail(CheckStock, no, "%s order (shipped %v) of %v has ledger deductions %v and restorations %v", o.status, o.shipped, o.items, d, r)
		}
	}
	for no := range perOrder {
		if c.rows[no] == nil {
			c.fail(CheckStock, no, "ledger rows of an order that does not exist")
		}
	}
}

// shippingCheck: an order SHIPPED or COMPLETED here was uploaded to WeChat
// exactly once; one refunded after it shipped, at most once (the refund may
// have come first); any other order never. Two uploads would mean a retry
// spent the one re-ship WeChat allows.
func (c *checker) shippingCheck() {
	for _, no := range sortedKeys(c.rows) {
		o := c.rows[no]
		n := len(c.shipping[no].Uploads)
		switch {
		case n > 1:
			c.fail(CheckShipping, no, "shipped at WeChat %d times: the re-ship was spent", n)
		case (o.status == string(status.Shipped) || o.status == string(status.Completed)) && n != 1:
			c.fail(CheckShipping, no, "the order is %s but WeChat has %d shipments of it", o.status, n)
		case !o.shipped && n != 0:
			c.fail(CheckShipping, no, "the order never shipped (%s) but WeChat has a shipment of it", o.status)
		}
		if n == 1 {
			c.r.ShippedAtWechat++
		}
	}
}

// orderWorkflows: every order ended with its workflow, or is PAID with its
// workflow running and idle; the OrderStatus search attribute of the
// execution is the row's status.
func (c *checker) orderWorkflows() {
	for _, no := range sortedKeys(c.rows) {
		o := c.rows[no]
		st := status.Order(o.status)
		if !st.Terminal() && st != status.Paid {
			c.r.Stuck = append(c.r.Stuck, no)
			if st == status.Pending && !o.deadline.IsZero() && c.now.After(o.deadline) {
				c.fail(CheckStuck, no, "still PENDING %v past its payment deadline (%s)",
					c.now.Sub(o.deadline).Round(time.Second), o.deadline.UTC().Format(time.RFC3339))
			} else {
				c.fail(CheckStuck, no, "still %s after the run settled", o.status)
			}
		}
		d, ok := c.wf[no]
		if !ok || d.missing != "" {
			c.fail(CheckStuck, no, "no workflow: %s", d.missing)
			continue
		}
		want := enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED
		if !st.Terminal() {
			want = enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING
		}
		if d.status != want {
			c.fail(CheckStuck, no, "the order is %s, its workflow %s (want %s)", o.status, d.status, want)
		}
		if d.orderStatus != o.status {
			c.fail(CheckStuck, no, "OrderStatus search attribute is %q, the row says %s", d.orderStatus, o.status)
		}
		if st == status.Paid && (d.pending > 0 || d.taskPending) {
			c.fail(CheckStuck, no, "PAID but its workflow is still busy (%d activities pending)", d.pending)
		}
	}
}

// visibilityBreaks checks one listing of the order workflows against the
// rows; it returns the breaks and the number of orders refused at creation.
// An order whose workflow continued as new (its history budget) is listed
// once per run: the runs that continued are the same order, not orphans or
// stale statuses, as long as the chain's latest run is listed too.
func (c *checker) visibilityBreaks(listed []listedWorkflow) ([]Break, int) {
	var orphans, mismatched []Break
	refused := 0
	continued, latest := map[string]bool{}, map[string]bool{}
	for _, l := range listed {
		no := strings.TrimPrefix(l.id, "order-")
		if l.status == enumspb.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW {
			continued[no] = true
			continue
		}
		latest[no] = true
		o := c.rows[no]
		switch {
		case o == nil && l.orderStatus == string(status.Refused) && l.status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED:
			refused++
		case o == nil:
			orphans = append(orphans, Break{Check: CheckStuck, Order: no, Detail: fmt.Sprintf("workflow %s (%s, OrderStatus %q) has no order row", l.id, l.status, l.orderStatus)})
		case l.orderStatus != o.status:
			mismatched = append(mismatched, Break{Check: CheckStuck, Order: no, Detail: fmt.Sprintf("visibility: OrderStatus %q, the row says %s", l.orderStatus, o.status)})
		}
	}
	for _, no := range sortedKeys(continued) {
		if !latest[no] {
			orphans = append(orphans, Break{Check: CheckStuck, Order: no, Detail: fmt.Sprintf("workflow %s is listed only as runs that continued as new: its latest run is missing", workflows.WorkflowID(no))})
		}
	}
	c.r.ContinuedRuns = len(continued)
	return append(orphans, mismatched...), refused
}

// strayChecks: every stray-payment workflow completed, and returned the
// money, found that its order keeps it — or, its refund failed at WeChat,
// ended REFUND_FAILED for a person.
func (c *checker) strayChecks() {
	for _, id := range sortedKeys(c.strayOpen) {
		c.fail(CheckStuck, "", "%s is %s", id, c.strayOpen[id])
	}
	for _, id := range sortedKeys(c.strayViews) {
		v := c.strayViews[id]
		c.r.StrayPayments[v.Status]++
		switch v.Status {
		case workflows.StrayRefunded, workflows.StrayKept:
		case workflows.StrayRefundFailed:
			if t, ok := c.sim[v.Payment.OutTradeNo]; !ok || t.TransactionID != v.Payment.TransactionID || !c.strayRefundFailed(t) {
				c.fail(CheckMoney, v.Payment.OutTradeNo, "%s ended REFUND_FAILED, but WeChat failed no refund %s",
					id, workflows.StrayRefundNo(v.Payment.TransactionID))
			}
		default:
			c.fail(CheckMoney, v.Payment.OutTradeNo, "%s ended %s", id, v.Status)
		}
	}
}

// promises: what the API told the payers came true.
func (c *checker) promises() {
	for _, rec := range c.records {
		rec.mu.Lock()
		no := rec.No
		row := c.rows[no]
		if row == nil {
			c.fail(CheckPromise, no, "created (201) but there is no row")
			rec.mu.Unlock()
			continue
		}
		t := c.sim[no]
		if t.TransactionID != "" && row.status == "CLOSED" {
			c.fail(CheckPromise, no, "WeChat took the payment (transaction %s) before the order closed, yet it is CLOSED", t.TransactionID)
		}
		if rec.SimPaid && t.TransactionID == "" {
			c.fail(CheckPromise, no, "the payer's payment was taken but WeChat has no transaction")
		}
		if rec.CancelledTo == "CLOSED" && row.status != "CLOSED" {
			c.fail(CheckPromise, no, "cancel answered CLOSED; the order is %s", row.status)
		}
		// A refund WeChat failed ends REFUND_FAILED, flagged (agreement
		// checks that): the API's answer could not promise more.
		refundFailed := row.status == string(status.RefundFailed) && c.orderRefundFailed(no)
		if rec.RefundAsked && row.status != "REFUNDED" && !refundFailed {
			c.fail(CheckPromise, no, "a refund was taken (200/202); the order is %s", row.status)
		}
		if rec.Shipped && row.status != "COMPLETED" && row.status != "REFUNDED" && !refundFailed {
			c.fail(CheckPromise, no, "shipped; the order is %s", row.status)
		}
		if rec.ReceiptConfirmed && row.status != "COMPLETED" {
			c.fail(CheckPromise, no, "the buyer confirmed receipt in WeChat; the order is %s", row.status)
		}
		if len(rec.Parts) > 0 {
			c.partPromises(rec, row, t)
		}
		if len(rec.Packages) > 1 {
			for _, p := range rec.Packages[1:] {
				if p != rec.Packages[0] {
					c.fail(CheckPromise, no, "pay answered two prepays: %s and %s", rec.Packages[0], p)
					break
				}
			}
		}
		rec.mu.Unlock()
	}
}

// Seen are what the part refund behaviours must be seen to do in a run
// (Report.PartRefunds), as every fault kind must happen.
var Seen = []string{
	SeenPartRefunded, SeenPartThenShipped, SeenPartsToTheLast, SeenConcurrentRefused,
}

// What the part refund behaviours were seen to do (Report.PartRefunds).
const (
	SeenPartRefunded      = "refunded_in_parts"       // an order of refunds_in_parts got a part back from WeChat
	SeenPartThenShipped   = "refunded_part_shipped"   // … and was shipped after
	SeenPartsToTheLast    = "refunded_to_the_last"    // … part by part until REFUNDED
	SeenConcurrentRefused = "concurrent_some_refused" // concurrent_refunds: some accepted, some refused as over the order
)

// partPromises: what the API answered the part refund requests of rec's
// order came true — each accepted request is a refund at WeChat of the
// amount and goods the answer gave (returned, or failed and held for a
// person), the goods asked; nothing the API refused or never took was
// returned; never more than was bought; and an order whose accepted
// parts cover every item ended REFUNDED (unless WeChat failed one).
func (c *checker) partPromises(rec *orderRecord, row *orderRow, t paysim.TransactionView) {
	no := rec.No
	atWechat := map[string]paysim.RefundView{}
	for _, rf := range t.Refunds {
		if isOrderRefund(no, rf.OutRefundNo) {
			atWechat[rf.OutRefundNo] = rf
		}
	}
	accepted := map[string]bool{}
	unknown, refusedOver, returned := 0, 0, 0
	var acceptedFen int64
	goods := map[int64]int64{}
	for _, ask := range rec.Parts {
		switch ask.Outcome {
		case partUnknown:
			unknown++
			continue
		case partRefused:
			if ask.Code == "REFUND_EXCEEDS_ORDER" {
				refusedOver++
			}
			continue
		}
		accepted[ask.OutRefundNo] = true
		acceptedFen += ask.Fen
		for p, q := range ask.Goods {
			goods[p] += q
		}
		if ask.Items != nil && !sameGoods(ask.Items, ask.Goods) {
			c.fail(CheckPromise, no, "a refund of %v was asked, the API accepted %s of %v", ask.Items, ask.OutRefundNo, ask.Goods)
		}
		rf, ok := atWechat[ask.OutRefundNo]
		switch {
		case !ok:
			c.fail(CheckPromise, no, "the API accepted refund %s (%s) by the %s; WeChat never had it", ask.OutRefundNo, fen(ask.Fen), ask.By)
		case rf.RefundFen != ask.Fen:
			c.fail(CheckPromise, no, "the API accepted refund %s of %s; WeChat had it for %s", ask.OutRefundNo, fen(ask.Fen), fen(rf.RefundFen))
		case rf.Status == paysim.RefundSuccess:
			returned++
		}
	}
	if unknown == 0 && !rec.RefundAsked {
		for _, rfNo := range sortedKeys(atWechat) {
			if !accepted[rfNo] {
				c.fail(CheckPromise, no, "WeChat has refund %s (%s, %s) that no accepted request made", rfNo, atWechat[rfNo].Status, fen(atWechat[rfNo].RefundFen))
			}
		}
	}
	if acceptedFen > rec.TotalFen {
		c.fail(CheckPromise, no, "the API accepted refunds of %s of an order of %s", fen(acceptedFen), fen(rec.TotalFen))
	}
	bought := map[int64]int64{}
	for _, l := range rec.Lines {
		bought[l.ProductID] += l.Quantity
	}
	for _, p := range slices.Sorted(maps.Keys(goods)) {
		if goods[p] > bought[p] {
			c.fail(CheckPromise, no, "the API accepted refunds of %d of product %d, %d bought", goods[p], p, bought[p])
		}
	}
	everything := unknown == 0 && sameGoods(goods, bought)
	if everything && row.status != string(status.Refunded) && !c.orderRefundFailed(no) {
		c.fail(CheckPromise, no, "refunds of every item were accepted; the order is %s", row.status)
	}
	seen := c.r.PartRefunds
	switch rec.Behaviour {
	case BehaviourRefundParts:
		if returned > 0 {
			seen[SeenPartRefunded]++
			if rec.Shipped {
				seen[SeenPartThenShipped]++
			}
			if row.status == string(status.Refunded) && returned > 1 {
				seen[SeenPartsToTheLast]++
			}
		}
	case BehaviourConcurrentRefunds:
		if returned > 0 && refusedOver > 0 {
			seen[SeenConcurrentRefused]++
		}
	}
}
