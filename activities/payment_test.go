package activities_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/internal/wxpay"
	"ordersaga/workflows"
)

func TestRequestPaymentTwiceGivesTheSamePrepay(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o := f.coffeeOrder("P1000001")
		stored := f.getOrder(o.OrderNo)
		in := workflows.RequestPaymentInput{OrderNo: o.OrderNo, UserID: stored.UserID, TotalFen: o.TotalFen, TimeExpire: o.PayDeadline}

		res := f.twice(o.OrderNo, workflows.ActivityRequestPayment, in)
		first, second := get[workflows.PayParams](t, res[0]), get[workflows.PayParams](t, res[1])

		v, ok := f.sim.Transaction(o.OrderNo)
		if !ok || v.PrepayID == "" {
			t.Fatalf("simulator has no prepay for %s", o.OrderNo)
		}
		if want := "prepay_id=" + v.PrepayID; first.Package != want || second.Package != want {
			t.Errorf("packages %q, %q; want %q for both", first.Package, second.Package, want)
		}
		if got := f.getOrder(o.OrderNo); got.PrepayID != v.PrepayID || got.Status != status.Pending {
			t.Errorf("stored order %+v, want prepay_id %s", got, v.PrepayID)
		}
		if n := len(f.sim.Transactions()); n != 1 {
			t.Errorf("%d transactions at WeChat, want 1", n)
		}
		// What WeChat was asked for comes from the stored order.
		if v.Description != "Yunnan coffee beans 500g ×2 and 1 more item" || v.TotalFen != 21500 ||
			v.PayerOpenID != "o-P1000001" || v.TradeState != paysim.StateNotPay {
			t.Errorf("transaction at WeChat: %+v", v)
		}
		if v.TimeExpire == nil || !v.TimeExpire.Equal(o.PayDeadline.Truncate(time.Second)) {
			t.Errorf("time_expire %v, want the deadline %v", v.TimeExpire, o.PayDeadline)
		}
		// The five wx.requestPayment parameters are signed by the merchant.
		for _, p := range []workflows.PayParams{first, second} {
			err := wxpay.VerifyPaySign(f.cfg.AppID, wxpay.PayParams{TimeStamp: p.TimeStamp, NonceStr: p.NonceStr,
				Package: p.Package, SignType: p.SignType, PaySign: p.PaySign}, devKeys.MchPublicKey)
			if err != nil || p.SignType != "RSA" {
				t.Errorf("paySign of %+v: %v", p, err)
			}
		}
	})
}

func TestRequestPaymentDescribesTheItems(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		// WeChat counts bytes: a Chinese character is 3 of its 127.
		long := strings.Repeat("云南小粒咖啡豆", 30)    // 210 characters, 630 bytes
		sixty := strings.Repeat("景德镇手绘青花瓷茶杯", 6) // 60 characters, 180 bytes
		tests := []struct {
			no    string
			names []string
			qty   int64
			want  string
		}{
			{"P3000001", []string{"Enamel mug"}, 1, "Enamel mug"},
			{"P3000002", []string{"Enamel mug"}, 3, "Enamel mug ×3"},
			{"P3000003", []string{"Tea", "Cup", "Pot"}, 1, "Tea and 2 more items"},
			// " ×2 and 1 more item" is 20 bytes and "…" 3: 104 bytes, 34 whole characters, remain.
			{"P3000004", []string{long, "Cup"}, 2, string([]rune(long)[:34]) + "… ×2 and 1 more item"},
			// 124 bytes before the "…": 41 whole characters.
			{"P3000005", []string{sixty}, 1, string([]rune(sixty)[:41]) + "…"},
			{"P3000006", []string{string([]rune(sixty)[:42])}, 1, string([]rune(sixty)[:42])}, // 126 bytes: fits
		}
		for _, tt := range tests {
			t.Run(tt.no, func(t *testing.T) {
				var items []workflows.Item
				for _, n := range tt.names {
					items = append(items, line(f.product(n, 100, 10), tt.qty))
				}
				o := f.order(tt.no, f.user("o-"+tt.no), items...)
				f.prepay(o)
				v, _ := f.sim.Transaction(tt.no)
				if v.Description != tt.want || len(v.Description) > 127 || !utf8.ValidString(v.Description) {
					t.Errorf("description %q (%d bytes), want %q", v.Description, len(v.Description), tt.want)
				}
			})
		}
	})
}

func TestRequestPaymentRefusals(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		req := func(o workflows.CreatedOrder) workflows.RequestPaymentInput {
			return workflows.RequestPaymentInput{OrderNo: o.OrderNo, UserID: f.getOrder(o.OrderNo).UserID, TotalFen: o.TotalFen, TimeExpire: o.PayDeadline}
		}

		t.Run("closed order", func(t *testing.T) {
			o := f.coffeeOrder("P2000001")
			f.must(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: o.OrderNo})
			_, err := f.run(workflows.ActivityRequestPayment, req(o))
			wantNonRetryable(t, err, workflows.ErrTypeNotPayable)
			if _, asked := f.sim.Transaction(o.OrderNo); asked {
				t.Error("WeChat was asked to prepay a closed order")
			}
		})
		t.Run("deadline passed", func(t *testing.T) {
			o := f.coffeeOrder("P2000002")
			in := req(o)
			in.TimeExpire = time.Now().Add(-time.Second)
			_, err := f.run(workflows.ActivityRequestPayment, in)
			wantNonRetryable(t, err, workflows.ErrTypeNotPayable)
		})
		t.Run("closed at WeChat", func(t *testing.T) {
			o := f.coffeeOrder("P2000003")
			f.prepay(o)
			f.must(workflows.ActivityClosePayment, o.OrderNo)
			_, err := f.run(workflows.ActivityRequestPayment, req(o))
			appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused)
			if wechatCode(t, appErr) != "ORDER_CLOSED" || !strings.Contains(appErr.Message(), "ORDER_CLOSED") {
				t.Errorf("refusal %q (code %q), want WeChat's ORDER_CLOSED", appErr.Message(), wechatCode(t, appErr))
			}
		})
		t.Run("paid at WeChat", func(t *testing.T) {
			o := f.coffeeOrder("P2000004")
			f.prepay(o)
			f.payerPays(o.OrderNo)
			_, err := f.run(workflows.ActivityRequestPayment, req(o))
			if appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused); wechatCode(t, appErr) != paysim.CodeOrderPaid {
				t.Errorf("code %q", wechatCode(t, appErr))
			}
		})
		t.Run("another amount", func(t *testing.T) {
			o := f.coffeeOrder("P2000005")
			in := req(o)
			in.TotalFen = 1
			_, err := f.run(workflows.ActivityRequestPayment, in)
			wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
		})
		t.Run("no such order", func(t *testing.T) {
			_, err := f.run(workflows.ActivityRequestPayment, workflows.RequestPaymentInput{OrderNo: "P2000404", TimeExpire: time.Now().Add(time.Hour)})
			wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
		})
	})
}

func TestRequestPaymentRetriesWhenWeChatFails(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st, func(o *fxOptions) { o.clientTimeout = 300 * time.Millisecond })
		tests := []struct {
			no          string
			fault       paysim.EndpointFault
			wechatDidIt bool // WeChat made the prepay; its answer was lost
		}{
			{"P5000001", paysim.EndpointFault{Status: 500}, false},
			{"P5000002", paysim.EndpointFault{Status: 503, Code: "SYSTEM_ERROR"}, false},
			{"P5000003", paysim.EndpointFault{Status: 429}, false},
			{"P5000004", paysim.EndpointFault{Status: 500, After: true}, true},
			{"P5000005", paysim.EndpointFault{BadSignature: true}, true},
			{"P5000006", paysim.EndpointFault{DelayMS: 2000}, false},
		}
		for _, tt := range tests {
			t.Run(tt.no, func(t *testing.T) {
				o := f.coffeeOrder(tt.no)
				in := workflows.RequestPaymentInput{OrderNo: o.OrderNo, TotalFen: o.TotalFen, TimeExpire: o.PayDeadline}
				f.faults(endpointFault(paysim.EndpointPrepay, tt.fault))
				_, err := f.run(workflows.ActivityRequestPayment, in)
				wantRetryable(t, err)
				if got := f.getOrder(o.OrderNo); got.PrepayID != "" {
					t.Errorf("prepay_id %q recorded from a failed call", got.PrepayID)
				}
				v, asked := f.sim.Transaction(o.OrderNo)
				if asked != tt.wechatDidIt {
					t.Errorf("prepay at WeChat after the failure = %v, want %v", asked, tt.wechatDidIt)
				}
				// The retry sends the same request: the same prepay, once.
				p := get[workflows.PayParams](t, f.must(workflows.ActivityRequestPayment, in))
				after, _ := f.sim.Transaction(o.OrderNo)
				if tt.wechatDidIt && after.PrepayID != v.PrepayID {
					t.Errorf("retry made a new prepay %s, first was %s", after.PrepayID, v.PrepayID)
				}
				if p.Package != "prepay_id="+after.PrepayID || f.getOrder(o.OrderNo).PrepayID != after.PrepayID {
					t.Errorf("package %q, stored %q, WeChat %q", p.Package, f.getOrder(o.OrderNo).PrepayID, after.PrepayID)
				}
			})
		}
		if n := len(f.sim.Transactions()); n != len(tests) {
			t.Errorf("%d transactions at WeChat, want %d", n, len(tests))
		}
	})
}

// The order is closed while WeChat is being asked for the prepay: the
// prepay_id is not recorded on a closed order, and the payer is refused.
func TestRequestPaymentOnAnOrderClosedMeanwhileIsNotPayable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		var closeNow atomic.Pointer[string]
		f := newFx(t, st, func(o *fxOptions) {
			o.beforeRequest = func(r *http.Request) {
				if no := closeNow.Swap(nil); no != nil && r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/jsapi") {
					now := time.Now()
					if _, _, err := st.TransitionOrder(context.Background(), *no, []status.Order{status.Pending},
						status.Closed, store.OrderUpdate{ClosedAt: &now}); err != nil {
						t.Error(err)
					}
				}
			}
		})
		o := f.coffeeOrder("P4000001")
		no := o.OrderNo
		closeNow.Store(&no)
		_, err := f.run(workflows.ActivityRequestPayment, workflows.RequestPaymentInput{OrderNo: no, TotalFen: o.TotalFen, TimeExpire: o.PayDeadline})
		wantNonRetryable(t, err, workflows.ErrTypeNotPayable)
		if got := f.getOrder(no); got.PrepayID != "" || got.Status != status.Closed {
			t.Errorf("order %+v", got)
		}
	})
}

func TestQueryPaymentTwiceReportsTheSamePayment(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o := f.coffeeOrder("Q1000001")

		// Never prepaid: WeChat does not know the order.
		notFound := get[workflows.PaymentNotice](t, f.must(workflows.ActivityQueryPayment, o.OrderNo))
		if notFound.TradeState != workflows.TradeNotFound || notFound.OutTradeNo != o.OrderNo || notFound.Paid() {
			t.Errorf("query before prepay: %+v", notFound)
		}

		f.prepay(o)
		unpaid := get[workflows.PaymentNotice](t, f.must(workflows.ActivityQueryPayment, o.OrderNo))
		if unpaid.TradeState != workflows.TradeNotPay || unpaid.TransactionID != "" || unpaid.AmountFen != o.TotalFen {
			t.Errorf("query before paying: %+v", unpaid)
		}

		if _, err := f.sim.Pay(o.OrderNo); err != nil {
			t.Fatal(err)
		}
		res := f.twice(o.OrderNo, workflows.ActivityQueryPayment, o.OrderNo)
		first, second := get[workflows.PaymentNotice](t, res[0]), get[workflows.PaymentNotice](t, res[1])
		v, _ := f.sim.Transaction(o.OrderNo)
		if first.TradeState != workflows.TradeSuccess || first.TransactionID != v.TransactionID || first.OutTradeNo != o.OrderNo ||
			first.AmountFen != 21500 || first.PayerTotalFen != 21500 || first.Currency != "CNY" ||
			first.AppID != f.cfg.AppID || first.MchID != f.cfg.MchID || first.PayerOpenID != "o-Q1000001" ||
			first.SuccessTime == nil || !first.SuccessTime.Equal(v.SuccessTime.Truncate(time.Second)) || first.Source != "query" {
			t.Errorf("query after paying: %+v (simulator %+v)", first, v)
		}
		if first.TransactionID != second.TransactionID || !first.SuccessTime.Equal(*second.SuccessTime) || first.TradeState != second.TradeState {
			t.Errorf("two queries differ: %+v / %+v", first, second)
		}
		// A query only reads: the order is marked paid by MarkPaid, not here.
		if got := f.getOrder(o.OrderNo); got.Status != status.Pending || got.TransactionID != "" {
			t.Errorf("a query changed the order: %+v", got)
		}
	})
}

func TestQueryPaymentFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st, func(o *fxOptions) { o.clientTimeout = 300 * time.Millisecond })
		o := f.coffeeOrder("Q2000001")
		f.prepay(o)
		tests := []struct {
			name      string
			fault     paysim.EndpointFault
			retryable bool
		}{
			{"5xx", paysim.EndpointFault{Status: 500}, true},
			{"rate limited", paysim.EndpointFault{Status: 429}, true},
			{"answer not verified", paysim.EndpointFault{BadSignature: true}, true},
			{"timeout", paysim.EndpointFault{DelayMS: 2000}, true},
			{"refused", paysim.EndpointFault{Status: 400, Code: "PARAM_ERROR"}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f.faults(endpointFault(paysim.EndpointQuery, tt.fault))
				_, err := f.run(workflows.ActivityQueryPayment, o.OrderNo)
				if tt.retryable {
					wantRetryable(t, err)
				} else if appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused); wechatCode(t, appErr) != "PARAM_ERROR" {
					t.Errorf("code %q", wechatCode(t, appErr))
				}
				// The fault was for one call: the next query answers.
				n := get[workflows.PaymentNotice](t, f.must(workflows.ActivityQueryPayment, o.OrderNo))
				if n.TradeState != workflows.TradeNotPay {
					t.Errorf("query after the fault: %+v", n)
				}
			})
		}
	})
}

func TestClosePaymentTwiceClosesOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o := f.coffeeOrder("X1000001")
		f.prepay(o)
		f.twice(o.OrderNo, workflows.ActivityClosePayment, o.OrderNo)
		v, _ := f.sim.Transaction(o.OrderNo)
		if v.TradeState != paysim.StateClosed || v.ClosedAt == nil {
			t.Fatalf("at WeChat: %+v", v)
		}
		closes := 0
		for _, e := range v.Events {
			if e.What == "closed by the merchant" {
				closes++
			}
		}
		if closes != 1 {
			t.Errorf("closed %d times at WeChat, want once: %+v", closes, v.Events)
		}
		if _, err := f.sim.Pay(o.OrderNo); err == nil {
			t.Error("the payer could still pay a closed order")
		}
		// Closing only closes at WeChat: the order row is the workflow's next step.
		if got := f.getOrder(o.OrderNo); got.Status != status.Pending {
			t.Errorf("order %s", got.Status)
		}
		// An order WeChat never saw closes too (WeChat answers 204).
		f.coffeeOrder("X1000002")
		f.must(workflows.ActivityClosePayment, "X1000002")
	})
}

// Closing an order the payer paid a moment before: WeChat refuses (ORDERPAID)
// or answers 204 and leaves it paid. Either way the activity decides nothing
// and the query after it finds the payment.
func TestClosePaymentOfAPaidOrderLeavesTheDecisionToTheQuery(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		tests := []struct {
			no, closeOnPaid string
			armed           bool // paid a moment before the close
			wantRefused     bool
		}{
			{"X2000001", paysim.CloseRefuse, false, true},
			{"X2000002", paysim.CloseOK204, false, false},
			{"X2000003", paysim.CloseRefuse, true, true},
			{"X2000004", paysim.CloseOK204, true, false},
		}
		for _, tt := range tests {
			t.Run(tt.no, func(t *testing.T) {
				if err := f.sim.SetCloseOnPaid(tt.closeOnPaid); err != nil {
					t.Fatal(err)
				}
				o := f.coffeeOrder(tt.no)
				f.prepay(o)
				var err error
				if tt.armed {
					_, err = f.sim.PayOnClose(o.OrderNo)
				} else {
					_, err = f.sim.Pay(o.OrderNo)
				}
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.run(workflows.ActivityClosePayment, o.OrderNo)
				if tt.wantRefused {
					if appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused); wechatCode(t, appErr) != paysim.CodeOrderPaid {
						t.Errorf("code %q", wechatCode(t, appErr))
					}
				} else if err != nil {
					t.Fatalf("close: %v", err)
				}
				n := get[workflows.PaymentNotice](t, f.must(workflows.ActivityQueryPayment, o.OrderNo))
				if !n.Paid() {
					t.Errorf("query after close: %+v", n)
				}
			})
		}
	})
}

func TestClosePaymentFailures(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		t.Run("5xx is retried and the retry closes", func(t *testing.T) {
			o := f.coffeeOrder("X3000001")
			f.prepay(o)
			f.faults(endpointFault(paysim.EndpointClose, paysim.EndpointFault{Status: 500, Count: 1}))
			_, err := f.run(workflows.ActivityClosePayment, o.OrderNo)
			wantRetryable(t, err)
			if v, _ := f.sim.Transaction(o.OrderNo); v.TradeState != paysim.StateNotPay {
				t.Fatalf("after a 500: %s", v.TradeState)
			}
			f.must(workflows.ActivityClosePayment, o.OrderNo)
			if v, _ := f.sim.Transaction(o.OrderNo); v.TradeState != paysim.StateClosed {
				t.Fatalf("after the retry: %s", v.TradeState)
			}
		})
		t.Run("an unverified answer is not trusted", func(t *testing.T) {
			o := f.coffeeOrder("X3000002")
			f.prepay(o)
			f.faults(endpointFault(paysim.EndpointClose, paysim.EndpointFault{BadSignature: true}))
			_, err := f.run(workflows.ActivityClosePayment, o.OrderNo)
			wantNonRetryable(t, err, workflows.ErrTypeWechatRefused)
			// WeChat did close it: the query the workflow runs next says so.
			n := get[workflows.PaymentNotice](t, f.must(workflows.ActivityQueryPayment, o.OrderNo))
			if n.TradeState != workflows.TradeClosed {
				t.Errorf("query after the unverified close: %+v", n)
			}
		})
	})
}

func TestMarkPaidTwiceMarksOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o := f.coffeeOrder("M1000001")
		f.prepay(o)
		n := f.payerPays(o.OrderNo)
		in := workflows.MarkPaidInput{OrderNo: o.OrderNo, Payment: n}

		res := f.twice(o.OrderNo, workflows.ActivityMarkPaid, in)
		for i, v := range res {
			if got := get[workflows.OrderStatusResult](t, v); got.Status != status.Paid {
				t.Errorf("attempt %d: %s", i+1, got.Status)
			}
		}
		got := f.getOrder(o.OrderNo)
		if got.Status != status.Paid || got.TransactionID != n.TransactionID || got.PaidAt == nil || !got.PaidAt.Equal(*n.SuccessTime) {
			t.Errorf("order %+v, want PAID by %s at %v", got, n.TransactionID, n.SuccessTime)
		}
		payments, err := st.ListPayments(f.ctx, o.OrderNo)
		if err != nil || len(payments) != 1 || payments[0].TransactionID != n.TransactionID || payments[0].AmountFen != 21500 ||
			payments[0].TradeState != workflows.TradeSuccess || payments[0].PayerOpenID != "o-M1000001" {
			t.Errorf("payments %+v %v", payments, err)
		}

		// The notify arrives after the query did the work, and after shipping.
		f.must(workflows.ActivitySetOrderStatus, workflows.SetOrderStatusInput{OrderNo: o.OrderNo,
			From: []status.Order{status.Paid}, To: status.Shipped})
		notify := n
		notify.Source = "notify"
		late := get[workflows.OrderStatusResult](t, f.must(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: o.OrderNo, Payment: notify}))
		if late.Status != status.Shipped {
			t.Errorf("late notify: %s", late.Status)
		}
	})
}

func TestMarkPaidConflictsAreNonRetryable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		success := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		pay := func(no, txID string, amount int64) workflows.PaymentNotice {
			return workflows.PaymentNotice{OutTradeNo: no, TransactionID: txID, TradeState: workflows.TradeSuccess,
				AppID: f.cfg.AppID, MchID: f.cfg.MchID, AmountFen: amount, PayerTotalFen: amount, Currency: "CNY",
				PayerOpenID: "o-x", SuccessTime: &success, Source: "notify"}
		}
		closed := f.coffeeOrder("M2000001")
		f.must(workflows.ActivityCloseOrder, workflows.CloseOrderInput{OrderNo: closed.OrderNo})
		paid := f.coffeeOrder("M2000002")
		f.must(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: paid.OrderNo, Payment: pay(paid.OrderNo, "4200000000000000001", paid.TotalFen)})
		pending := f.coffeeOrder("M2000003")

		tests := []struct {
			name       string
			orderNo    string
			payment    workflows.PaymentNotice
			wantType   string
			wantRecord bool // the payment is recorded all the same
		}{
			{"closed order", closed.OrderNo, pay(closed.OrderNo, "4200000000000000002", closed.TotalFen), workflows.ErrTypeStatusConflict, true},
			{"paid by another transaction", paid.OrderNo, pay(paid.OrderNo, "4200000000000000003", paid.TotalFen), workflows.ErrTypeStatusConflict, true},
			{"amount does not match", pending.OrderNo, pay(pending.OrderNo, "4200000000000000004", 1), workflows.ErrTypeInvalidOrder, true},
			{"not a payment", pending.OrderNo, workflows.PaymentNotice{OutTradeNo: pending.OrderNo, TradeState: workflows.TradeNotPay}, workflows.ErrTypeInvalidOrder, false},
			{"another order's payment", pending.OrderNo, pay("M2000002", "4200000000000000005", pending.TotalFen), workflows.ErrTypeInvalidOrder, false},
			{"no such order", "M2000404", pay("M2000404", "4200000000000000006", 100), workflows.ErrTypeInvalidOrder, true},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := f.getOrderOrZero(tt.orderNo)
				for attempt := 1; attempt <= 2; attempt++ {
					_, err := f.run(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: tt.orderNo, Payment: tt.payment})
					wantNonRetryable(t, err, tt.wantType)
				}
				if after := f.getOrderOrZero(tt.orderNo); after.Status != before.Status || after.TransactionID != before.TransactionID {
					t.Errorf("order changed: %s %q -> %s %q", before.Status, before.TransactionID, after.Status, after.TransactionID)
				}
				_, err := st.GetPayment(f.ctx, tt.payment.TransactionID)
				if recorded := err == nil; recorded != tt.wantRecord {
					t.Errorf("payment recorded = %v, want %v (%v)", recorded, tt.wantRecord, err)
				}
			})
		}
	})
}

func (f *fx) getOrderOrZero(orderNo string) store.Order {
	o, _ := f.st.GetOrder(f.ctx, orderNo)
	return o
}
