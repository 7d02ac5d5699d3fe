package paysim_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/tradebill"
)

func today() string { return time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02") }

func TestRefundByHandInTheMerchantPlatformSettlesWithoutANotify(t *testing.T) {
	m := newMerchant(t, nil)
	no := orderNo()
	m.prepay(t, no, 1000)
	if _, err := m.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the payment notify", func() bool { return len(m.notifications()) == 1 })

	code, out := m.control(t, http.MethodPost, "/sim/refunds", map[string]any{"out_trade_no": no, "refund_fen": 400, "reason": "goodwill"})
	if code != http.StatusOK || !strings.HasPrefix(fmt.Sprint(out["out_refund_no"]), "MP") || out["refund_fen"] != float64(400) {
		t.Fatalf("POST /sim/refunds: %d %v", code, out)
	}
	waitFor(t, 5*time.Second, "the refund to settle", func() bool {
		r, _ := m.sim.Refund(fmt.Sprint(out["out_refund_no"]))
		return r.Status == paysim.RefundSuccess
	})
	// More than the rest, or of an order never paid: refused.
	if code, _ := m.control(t, http.MethodPost, "/sim/refunds", map[string]any{"out_trade_no": no, "refund_fen": 601}); code != http.StatusConflict {
		t.Errorf("refund beyond what is left: %d, want 409", code)
	}
	unpaid := orderNo()
	m.prepay(t, unpaid, 1000)
	if code, _ := m.control(t, http.MethodPost, "/sim/refunds", map[string]any{"out_trade_no": unpaid}); code != http.StatusConflict {
		t.Errorf("refund of an unpaid order: %d, want 409", code)
	}
	if code, _ := m.control(t, http.MethodPost, "/sim/refunds", map[string]any{"refund_fen": 1}); code != http.StatusBadRequest {
		t.Errorf("refund of nothing: %d, want 400", code)
	}
	// A notify is queued when the refund settles: the payment's is the only one.
	if ns := m.view(t, no).Notifies; len(ns) != 1 || ns[0].EventType != paysim.EventTransactionSuccess {
		t.Errorf("notifications %+v; the hand-made refund must send none", ns)
	}
}

func TestPaymentTheShopNeverIssuedIsInTheBill(t *testing.T) {
	m := newMerchant(t, func(o *paysim.Options) { o.BillsImmediate = true })
	code, out := m.control(t, http.MethodPost, "/sim/payments", map[string]any{"out_trade_no": "ELSEWHERE0001", "total_fen": 2500})
	if code != http.StatusOK || out["trade_state"] != paysim.StateSuccess || out["transaction_id"] == "" {
		t.Fatalf("POST /sim/payments: %d %v", code, out)
	}
	for _, bad := range []map[string]any{
		{"out_trade_no": "ELSEWHERE0001", "total_fen": 1}, // exists
		{"out_trade_no": "x", "total_fen": 1},
		{"out_trade_no": "ELSEWHERE0002", "total_fen": 0},
	} {
		if code, _ := m.control(t, http.MethodPost, "/sim/payments", bad); code == http.StatusOK {
			t.Errorf("POST /sim/payments %v accepted", bad)
		}
	}
	resp, err := http.Get(m.simURL + "/sim/bills/" + today())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "`ELSEWHERE0001,") || !strings.Contains(string(body), "`25.00,`0.00,`") {
		t.Errorf("GET /sim/bills/today: %d\n%s", resp.StatusCode, body)
	}
}

func TestSyntheticDayIsInItsBillAndListsTheSameTrades(t *testing.T) {
	m := newMerchant(t, func(o *paysim.Options) { o.BillsImmediate = true })
	day := paysim.SyntheticDay{Date: today(), Payments: 50, Refunds: 5, HandRefunds: 2, Seed: 7}
	code, out := m.control(t, http.MethodPost, "/sim/bills/"+day.Date+"/synthetic", map[string]any{"payments": 50, "refunds": 5, "hand_refunds": 2, "seed": 7})
	if code != http.StatusOK {
		t.Fatalf("POST synthetic: %d %v", code, out)
	}
	var paid, refunded, hand, trades int64
	if err := day.Each(func(tr paysim.SyntheticTrade) error {
		trades++
		paid += tr.TotalFen
		if tr.OutRefundNo != "" {
			refunded += tr.TotalFen
		}
		if tr.HandRefund {
			hand++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if trades != 50 || hand != 2 {
		t.Fatalf("%d trades, %d by hand", trades, hand)
	}
	tb, err := m.client.TradeBillGzip(context.Background(), day.Date)
	if err != nil {
		t.Fatal(err)
	}
	body, err := m.client.DownloadBill(context.Background(), tb)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	dl, err := tradebill.OpenGzip(body, tb.HashValue)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := tradebill.NewReader(dl)
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := rd.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if err := dl.Verify(); err != nil {
		t.Fatal(err)
	}
	if s := rd.Summary(); s.Rows != 57 || s.TotalFen != paid || s.RequestedRefundFen != refunded {
		t.Errorf("summary %+v; want 57 rows, %d paid, %d refunded", s, paid, refunded)
	}
	for _, bad := range []map[string]any{{"payments": 0}, {"payments": 5, "refunds": 6}, {"payments": 5, "hand_refunds": -1}} {
		if code, _ := m.control(t, http.MethodPost, "/sim/bills/"+day.Date+"/synthetic", bad); code != http.StatusBadRequest {
			t.Errorf("synthetic %v: %d, want 400", bad, code)
		}
	}
}

func TestBillFaultsAreValidatedAndCleared(t *testing.T) {
	m := newMerchant(t, nil)
	if code, _ := m.control(t, http.MethodPost, "/sim/faults", map[string]any{"bill": map[string]any{"corrupt": "shredded"}}); code != http.StatusBadRequest {
		t.Errorf("unknown corruption: %d, want 400", code)
	}
	m.setFaults(t, paysim.Faults{Bill: &paysim.BillFaults{Corrupt: paysim.BillTruncated, Count: -1}})
	if f := m.sim.CurrentFaults(); f.Bill == nil || f.Bill.Corrupt != paysim.BillTruncated || f.Bill.Count != -1 {
		t.Errorf("faults %+v", f.Bill)
	}
	m.control(t, http.MethodDelete, "/sim/faults", nil)
	if f := m.sim.CurrentFaults(); f.Bill == nil || f.Bill.Corrupt != "" {
		t.Errorf("after DELETE: %+v", f.Bill)
	}
}
