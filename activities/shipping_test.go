package activities_test

import (
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/temporal"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

// shippedOrder is a paid order whose row is SHIPPED with shipment, to a
// structured address with a phone.
func (f *fx) shippedOrder(orderNo string, shipment workflows.ShipRequest) (workflows.PaymentNotice, workflows.UploadShippingInput) {
	f.t.Helper()
	coffee := f.product("Yunnan coffee beans 500g", 8800, 10)
	u := f.user("o-" + orderNo)
	get[workflows.CreatedOrder](f.t, f.must(workflows.ActivityCreateOrder, workflows.CreateOrderInput{
		OrderNo: orderNo, UserID: u.ID, Items: []workflows.Item{line(coffee, 1)}, PayDeadline: time.Now().Add(15 * time.Minute),
		ShippingAddress: &workflows.ShippingAddress{ReceiverName: "张三", Phone: "13812345678", Province: "广东省", City: "深圳市", Detail: "科技园路1号"},
	}))
	o := f.getOrder(orderNo)
	f.prepay(workflows.CreatedOrder{OrderNo: orderNo, TotalFen: o.TotalFen, PayDeadline: o.PayDeadline})
	p := f.payerPays(orderNo)
	f.must(workflows.ActivityMarkPaid, workflows.MarkPaidInput{OrderNo: orderNo, Payment: p})
	f.must(workflows.ActivitySetOrderStatus, workflows.SetOrderStatusInput{
		OrderNo: orderNo, From: []status.Order{status.Paid}, To: status.Shipped, TrackingNo: shipment.TrackingNo, Shipment: &shipment,
	})
	return p, workflows.UploadShippingInput{OrderNo: orderNo, TransactionID: p.TransactionID, Shipment: shipment}
}

var sfShipment = workflows.ShipRequest{
	LogisticsType: workflows.LogisticsExpress, TrackingNo: "SF100",
	Packages: []workflows.Package{{ExpressCompany: "SF", TrackingNo: "SF100"}, {ExpressCompany: "YTO", TrackingNo: "YT200"}},
	ItemDesc: "Yunnan coffee beans 500g ×1",
}

// The shipment reaches WeChat once: the order's row keeps it, WeChat gets
// both packages (SF with the receiver's masked phone), and a retry — which
// asks WeChat first — sends nothing again.
func TestUploadShippingInfoShipsOnceAtWeChat(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p, in := f.shippedOrder("SHIP00001", sfShipment)
		row := f.getOrder("SHIP00001")
		if row.Shipment == nil || row.Shipment.LogisticsType != "express" || len(row.Shipment.Packages) != 2 || row.TrackingNo != "SF100" ||
			row.ShipTo.Phone != "13812345678" {
			t.Fatalf("the row: shipment %+v tracking %q ship_to %+v", row.Shipment, row.TrackingNo, row.ShipTo)
		}
		res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityUploadShipping, in))
		if !res.Managed || !res.Uploaded || res.Already || res.OrderState != 2 {
			t.Fatalf("first upload: %+v", res)
		}
		in.Retry = true
		again := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityUploadShipping, in))
		if !again.Uploaded || !again.Already {
			t.Fatalf("the retry: %+v", again)
		}
		v, _ := f.sim.Shipping("SHIP00001")
		if len(v.Uploads) != 1 || v.OrderState != paysim.ShipShipped || len(v.ShippingList) != 2 || v.TransactionID != p.TransactionID {
			t.Fatalf("WeChat's view: %+v", v)
		}
		if c := v.ShippingList[0].Contact; c == nil || c.ReceiverContact != "*******5678" || v.ShippingList[1].Contact != nil {
			t.Errorf("contacts %+v %+v", v.ShippingList[0].Contact, v.ShippingList[1].Contact)
		}
		if u := v.Uploads[0]; u.DeliveryMode != 2 || u.IsAllDelivered == nil || !*u.IsAllDelivered || u.LogisticsType != 1 {
			t.Errorf("upload %+v: want split delivery, all delivered, express", u)
		}
	})
}

// WeChat busy, WeChat not seeing the payment yet, and a lost answer are
// retried; a refusal is not, and says why.
func TestUploadShippingInfoSortsWeChatsAnswers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		_, in := f.shippedOrder("SHIP00002", sfShipment)
		for _, fault := range []paysim.EndpointFault{{ErrCode: -1}, {ErrCode: 10060001}, {Status: 502}} {
			f.faults(endpointFault(paysim.EndpointUploadShippingInfo, fault))
			_, err := f.run(workflows.ActivityUploadShipping, in)
			wantRetryable(t, err)
		}
		// The answer is lost after WeChat took it: the retry asks first.
		f.faults(endpointFault(paysim.EndpointUploadShippingInfo, paysim.EndpointFault{ErrCode: -1, After: true}))
		_, err := f.run(workflows.ActivityUploadShipping, in)
		wantRetryable(t, err)
		in.Retry = true
		if res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityUploadShipping, in)); !res.Already {
			t.Fatalf("after the lost answer: %+v", res)
		}
		if v, _ := f.sim.Shipping("SHIP00002"); len(v.Uploads) != 1 {
			t.Fatalf("WeChat took %d uploads", len(v.Uploads))
		}

		// A shipment WeChat refuses: non-retryable, WeChat's code in the message.
		_, bad := f.shippedOrder("SHIP00003", workflows.ShipRequest{LogisticsType: workflows.LogisticsVirtual, ItemDesc: " "})
		_, err = f.run(workflows.ActivityUploadShipping, bad)
		appErr := wantNonRetryable(t, err, workflows.ErrTypeWechatRefused)
		if code := wechatCode(t, appErr); code != "10060008" {
			t.Errorf("refusal code %q, want 10060008 (no item description)", code)
		}
		// One of before shipping management cannot be reported at all.
		_, old := f.shippedOrder("SHIP00004", workflows.ShipRequest{TrackingNo: "SF1"})
		_, err = f.run(workflows.ActivityUploadShipping, old)
		wantNonRetryable(t, err, workflows.ErrTypeWechatRefused)
		if v, _ := f.sim.Shipping("SHIP00004"); len(v.Uploads) != 0 {
			t.Errorf("WeChat took %+v", v.Uploads)
		}
	})
}

// An upload WeChat did not answer may still be taken by WeChat after the
// client gave up: the next attempt waits well past the client's timeout
// before it asks get_order, so it cannot see "not shipped yet" and spend
// the re-ship. An answer (busy, payment not visible) is retried at the
// policy's pace.
func TestUploadShippingInfoWithoutAnAnswerIsAskedAboutOnlyLater(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		_, in := f.shippedOrder("SHIP00006", sfShipment)
		for _, tc := range []struct {
			name      string
			fault     paysim.EndpointFault
			wantDelay bool
		}{
			{"HTTP 502, WeChat took it", paysim.EndpointFault{Status: 502, After: true}, true},
			{"HTTP 504, not taken", paysim.EndpointFault{Status: 504}, true},
			{"busy answered", paysim.EndpointFault{ErrCode: -1}, false},
			{"payment not visible answered", paysim.EndpointFault{ErrCode: 10060001}, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f.faults(endpointFault(paysim.EndpointUploadShippingInfo, tc.fault))
				_, err := f.run(workflows.ActivityUploadShipping, in)
				wantRetryable(t, err)
				var appErr *temporal.ApplicationError
				errors.As(err, &appErr)
				delay := time.Duration(0)
				if appErr != nil {
					delay = appErr.NextRetryDelay()
				}
				if tc.wantDelay && delay < 20*time.Second || !tc.wantDelay && delay != 0 {
					t.Errorf("next retry in %s (err %v); want it past the client's 10 s timeout: %v", delay, err, tc.wantDelay)
				}
			})
		}
		in.Retry = true
		if res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityUploadShipping, in)); !res.Already {
			t.Fatalf("after the lost answer: %+v", res)
		}
		if v, _ := f.sim.Shipping("SHIP00006"); len(v.Uploads) != 1 {
			t.Fatalf("WeChat took %d uploads", len(v.Uploads))
		}
	})
}

// WeChat's view, the reminder (taken once), and the buyer's confirmation.
func TestQueryWechatShippingAndRemindTheBuyer(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		p, in := f.shippedOrder("SHIP00005", sfShipment)
		q := workflows.WechatShippingInput{OrderNo: "SHIP00005", TransactionID: p.TransactionID, ReceivedAt: time.Now()}
		if res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityQueryWechatShipping, q)); res.OrderState != 1 || res.Uploaded {
			t.Fatalf("before the upload: %+v", res)
		}
		f.must(workflows.ActivityUploadShipping, in)
		if r := get[workflows.RemindResult](t, f.must(workflows.ActivityRemindReceipt, q)); !r.Reminded {
			t.Fatalf("reminder: %+v", r)
		}
		if r := get[workflows.RemindResult](t, f.must(workflows.ActivityRemindReceipt, q)); r.Reminded || r.Why == "" {
			t.Fatalf("a second reminder: %+v (WeChat takes one; an answer, not a failure)", r)
		}
		if _, err := f.sim.ConfirmReceipt("SHIP00005"); err != nil {
			t.Fatal(err)
		}
		if res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityQueryWechatShipping, q)); res.OrderState != 4 || !res.Uploaded {
			t.Fatalf("after the buyer confirmed: %+v", res)
		}
		f.faults(endpointFault(paysim.EndpointGetOrder, paysim.EndpointFault{ErrCode: -1}))
		_, err := f.run(workflows.ActivityQueryWechatShipping, q)
		wantRetryable(t, err)
	})
}

// WECHAT_SHIPPING_MANAGED: off asks WeChat nothing; auto asks
// is_trade_managed once per process and follows it.
func TestShippingActivitiesFollowWhetherWeChatManagesTheShop(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		for _, tc := range []struct {
			name, mode  string
			notManaged  bool
			wantManaged bool
			wantTokens  int
		}{
			{"off", "off", false, false, 0},
			{"auto, managed", "auto", false, true, 1},
			{"auto, not managed", "auto", true, false, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				f := newFx(t, st, func(o *fxOptions) {
					o.shipping = tc.mode
					o.sim = func(so *paysim.Options) { so.NotTradeManaged = tc.notManaged }
				})
				p, in := f.shippedOrder("SHIPM"+tc.mode[:2]+map[bool]string{true: "N", false: "Y"}[tc.notManaged], sfShipment)
				for range 2 {
					res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityQueryWechatShipping,
						workflows.WechatShippingInput{OrderNo: in.OrderNo, TransactionID: p.TransactionID}))
					if res.Managed != tc.wantManaged {
						t.Fatalf("managed %v, want %v", res.Managed, tc.wantManaged)
					}
				}
				res := get[workflows.WechatShippingResult](t, f.must(workflows.ActivityUploadShipping, in))
				if res.Managed != tc.wantManaged || res.Uploaded != tc.wantManaged {
					t.Fatalf("upload: %+v", res)
				}
				if w := f.sim.Wxa(); w.TokensIssued != tc.wantTokens {
					t.Errorf("%d tokens issued, want %d", w.TokensIssued, tc.wantTokens)
				}
			})
		}
	})
}
