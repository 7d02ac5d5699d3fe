package wxapp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxapp"
)

func upload(tx paysim.TransactionView, at time.Time, items ...wxapp.ShippingItem) wxapp.UploadShippingInfo {
	in := wxapp.UploadShippingInfo{
		OrderKey:      wxapp.OrderKey{OrderNumberType: wxapp.OrderKeyTransaction, TransactionID: tx.TransactionID},
		LogisticsType: wxapp.LogisticsExpress, DeliveryMode: wxapp.DeliveryUnified,
		ShippingList: items, UploadTime: wxapp.UploadTime(at), Payer: wxapp.Payer{OpenID: tx.PayerOpenID},
	}
	if len(items) > 1 {
		all := true
		in.DeliveryMode, in.IsAllDelivered = wxapp.DeliverySplit, &all
	}
	return in
}

// A payment is shipped once and may be re-shipped once: get_order shows
// each, and a third upload is refused.
func TestShipmentCanBeChangedOnceAtWeChat(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	tx := f.paid(t, "WXASHIP001")
	ref := wxapp.OrderRef{MerchantID: mchID, MerchantTradeNo: tx.OutTradeNo}

	o, err := c.GetOrder(ctx, ref)
	if err != nil || o.OrderState != wxapp.OrderToShip || o.Shipped() {
		t.Fatalf("before shipping: %+v %v", o, err)
	}
	pkg := wxapp.ShippingItem{ExpressCompany: "YTO", TrackingNo: "YT100", ItemDesc: "Mug ×1"}
	if err := c.UploadShippingInfo(ctx, upload(tx, f.clock.Now(), pkg)); err != nil {
		t.Fatal(err)
	}
	o, err = c.GetOrder(ctx, wxapp.OrderRef{TransactionID: tx.TransactionID})
	if err != nil || o.OrderState != wxapp.OrderShipped || o.Shipping == nil || o.Shipping.FinishShippingCount != 1 ||
		len(o.Shipping.ShippingList) != 1 || o.Shipping.ShippingList[0].TrackingNo != "YT100" {
		t.Fatalf("after shipping: %+v %v", o, err)
	}
	pkg.TrackingNo = "YT200"
	if err := c.UploadShippingInfo(ctx, upload(tx, f.clock.Now(), pkg)); err != nil {
		t.Fatalf("the one re-ship: %v", err)
	}
	err = c.UploadShippingInfo(ctx, upload(tx, f.clock.Now(), pkg))
	if !wxapp.HasCode(err, wxapp.CodeReshipUsed) {
		t.Fatalf("a third upload: %v, want errcode %d", err, wxapp.CodeReshipUsed)
	}
	if v, _ := f.sim.Shipping(tx.OutTradeNo); len(v.Uploads) != 2 || v.ShippingList[0].TrackingNo != "YT200" {
		t.Errorf("simulator's view: %+v", v)
	}
}

func TestShipmentsWeChatRefuses(t *testing.T) {
	long := strings.Repeat("茶", 121)
	pkg := wxapp.ShippingItem{ExpressCompany: "YTO", TrackingNo: "YT1", ItemDesc: "Mug"}
	tests := []struct {
		name string
		edit func(in *wxapp.UploadShippingInfo)
		code int
	}{
		{"unknown logistics type", func(in *wxapp.UploadShippingInfo) { in.LogisticsType = 9 }, 10060005},
		{"express without a tracking number", func(in *wxapp.UploadShippingInfo) { in.ShippingList[0].TrackingNo = "" }, 10060026},
		{"item_desc over 120 characters", func(in *wxapp.UploadShippingInfo) { in.ShippingList[0].ItemDesc = long }, 10060009},
		{"SF Express without a contact", func(in *wxapp.UploadShippingInfo) { in.ShippingList[0].ExpressCompany = "SF" }, 10060014},
		{"SF Express with an unmasked phone", func(in *wxapp.UploadShippingInfo) {
			in.ShippingList[0].ExpressCompany = "SF"
			in.ShippingList[0].Contact = &wxapp.Contact{ReceiverContact: "13812345678"}
		}, 10060014},
		{"split delivery of a pickup", func(in *wxapp.UploadShippingInfo) {
			in.LogisticsType, in.DeliveryMode = wxapp.LogisticsPickup, wxapp.DeliverySplit
		}, 10060006},
		{"someone else's payment", func(in *wxapp.UploadShippingInfo) { in.Payer.OpenID = "o-somebody-else" }, 10060014},
		{"a payment WeChat does not have", func(in *wxapp.UploadShippingInfo) { in.OrderKey.TransactionID = "4200000000000000000000000009" }, 10060001},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			c := f.client(nil)
			tx := f.paid(t, "WXAREF"+string(rune('A'+i))+"01")
			in := upload(tx, f.clock.Now(), pkg)
			tc.edit(&in)
			err := c.UploadShippingInfo(context.Background(), in)
			if !wxapp.HasCode(err, tc.code) {
				t.Fatalf("err %v, want errcode %d", err, tc.code)
			}
			if v, _ := f.sim.Shipping(tx.OutTradeNo); len(v.Uploads) != 0 {
				t.Errorf("a refused upload was recorded: %+v", v.Uploads)
			}
		})
	}
	t.Run("SF Express with the masked phone", func(t *testing.T) {
		f := newFixture(t, nil)
		tx := f.paid(t, "WXAREFSF01")
		sf := pkg
		sf.ExpressCompany, sf.Contact = "SF", &wxapp.Contact{ReceiverContact: wxapp.MaskPhone("13812345678")}
		if err := f.client(nil).UploadShippingInfo(context.Background(), upload(tx, f.clock.Now(), sf)); err != nil {
			t.Fatal(err)
		}
	})
}

// Right after the payment WeChat's shipping side may not see it yet
// (10060001); a moment later it does.
func TestFreshPaymentIsNotFoundForAWhile(t *testing.T) {
	f := newFixture(t, func(o *paysim.Options) { o.FreshPayment = time.Minute })
	c := f.client(nil)
	tx := f.paid(t, "WXAFRESH01")
	in := upload(tx, f.clock.Now(), wxapp.ShippingItem{ExpressCompany: "YTO", TrackingNo: "YT1", ItemDesc: "Mug"})
	if err := c.UploadShippingInfo(context.Background(), in); !wxapp.HasCode(err, wxapp.CodePaymentNotFound) {
		t.Fatalf("at once: %v, want 10060001", err)
	}
	f.clock.Advance(time.Minute)
	if err := c.UploadShippingInfo(context.Background(), in); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
}

func TestReceiptConfirmationAndReminders(t *testing.T) {
	f := newFixture(t, nil)
	c := f.client(nil)
	ctx := context.Background()
	tx := f.paid(t, "WXARECV001")
	ref := wxapp.OrderRef{TransactionID: tx.TransactionID}
	if err := c.NotifyConfirmReceive(ctx, ref, f.clock.Now()); err == nil {
		t.Fatal("a reminder for an order not shipped was taken")
	}
	if err := c.UploadShippingInfo(ctx, upload(tx, f.clock.Now(), wxapp.ShippingItem{ItemDesc: "Mug", ExpressCompany: "ZTO", TrackingNo: "ZT1"})); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyConfirmReceive(ctx, ref, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyConfirmReceive(ctx, ref, f.clock.Now()); err == nil {
		t.Error("a second reminder was taken: WeChat takes one per order")
	}
	if _, err := f.sim.ConfirmReceipt(tx.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	o, err := c.GetOrder(ctx, ref)
	if err != nil || o.OrderState != wxapp.OrderSettled {
		t.Fatalf("after the buyer confirmed: %+v %v", o, err)
	}
	if err := c.SetMsgJumpPath(ctx, "pages/orders/detail"); err != nil {
		t.Fatal(err)
	}
	if w := f.sim.Wxa(); w.JumpPath != "pages/orders/detail" {
		t.Errorf("jump path %q", w.JumpPath)
	}
	if managed, err := c.IsTradeManaged(ctx); err != nil || !managed {
		t.Errorf("is_trade_managed %v %v", managed, err)
	}
}

func TestCutCharsAndMaskPhone(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Mug", "Mug"},
		{strings.Repeat("茶", 120), strings.Repeat("茶", 120)},
		{strings.Repeat("茶", 121), strings.Repeat("茶", 119) + "…"},
	} {
		if got := wxapp.CutChars(tc.in, 120); got != tc.want {
			t.Errorf("CutChars(%d runes) = %d runes", len([]rune(tc.in)), len([]rune(got)))
		}
	}
	for in, want := range map[string]string{"13812345678": "*******5678", "+86 138-1234-5678": "+** ***-****-5678", "123": "123"} {
		if got := wxapp.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}
