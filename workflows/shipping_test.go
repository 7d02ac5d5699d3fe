package workflows

import (
	"slices"
	"testing"
	"time"

	"go.temporal.io/sdk/workflow"

	"ordersaga/internal/status"
)

var expressShipment = ShipRequest{
	LogisticsType: LogisticsExpress, TrackingNo: "YT1",
	Packages: []Package{{ExpressCompany: "YTO", TrackingNo: "YT1"}}, ItemDesc: "Coffee beans ×2",
}

func settlement(method int) func() any {
	return func() any {
		return WechatEvent{Event: EventOrderSettlement, TransactionID: "tx-" + orderNo, ConfirmReceiveMethod: method}
	}
}

// managedHarness is a paid order of a shop WeChat manages, shipped at 1 h.
func managedHarness(t *testing.T, w *world) *harness {
	w.wxManaged = true
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, expressShipment)
	return h
}

func TestShippedOrderIsReportedToWeChatAndCompletesOnItsSettlementEvent(t *testing.T) {
	w := newWorld()
	h := managedHarness(t, w)
	shipped := h.state(2 * time.Hour)
	h.signal(50*time.Hour, SignalWechatEvent, settlement(1))
	// WeChat may push the same event again: harmless.
	h.signal(50*time.Hour+time.Second, SignalWechatEvent, settlement(1))
	final := h.run()

	if shipped.Status != status.Shipped || shipped.Wechat == nil || !shipped.Wechat.Uploaded || shipped.Wechat.OrderState != WechatShipped {
		t.Fatalf("after shipping: %+v wechat %+v", shipped.Status, shipped.Wechat)
	}
	if final.Status != status.Completed || h.completedAfter(final) > 51*time.Hour {
		t.Fatalf("final %s after %v", final.Status, h.completedAfter(final))
	}
	if got := final.Transitions[len(final.Transitions)-1].Why; got != "WeChat reports receipt confirmed by the buyer (settlement event)" {
		t.Errorf("completed because %q", got)
	}
	if final.Wechat == nil || final.Wechat.State != WechatStateText(WechatSettled) || final.Wechat.Settlement == nil {
		t.Errorf("WeChat's view at the end: %+v", final.Wechat)
	}
	x := w.wxOrder(orderNo)
	if x.uploads != 1 || x.lastBody.Shipment.Packages[0].TrackingNo != "YT1" || x.lastBody.TransactionID != "tx-"+orderNo {
		t.Errorf("WeChat took %d uploads, the last %+v", x.uploads, x.lastBody)
	}
	if n := w.count(ActivityQueryWechatShipping); n != 0 {
		t.Errorf("WeChat was asked %d times: the event came before the auto-confirm time", n)
	}
	if w.order(orderNo).tracking != "YT1" {
		t.Errorf("the row's tracking number is %q", w.order(orderNo).tracking)
	}
}

// An upload whose answer was lost is not sent again: the retry asks
// WeChat first, so the one re-ship WeChat allows is not spent.
func TestLostUploadAnswerDoesNotSpendTheReship(t *testing.T) {
	w := newWorld()
	w.lostUploads = 1
	h := managedHarness(t, w)
	h.signal(30*time.Hour, SignalWechatEvent, settlement(1))
	final := h.run()

	if final.Status != status.Completed {
		t.Fatalf("final %s", final.Status)
	}
	if x := w.wxOrder(orderNo); x.uploads != 1 {
		t.Fatalf("WeChat took %d uploads, want 1", x.uploads)
	}
	if n := w.count(ActivityUploadShipping); n != 2 {
		t.Errorf("upload activity ran %d times, want 2 (the lost answer, the retry that asked first)", n)
	}
}

// WeChat busy (or not seeing the payment yet) for longer than a round:
// the next round comes later, asks WeChat first, and reports it once.
func TestUploadRoundsRetryWithBackoffUntilWeChatTakesIt(t *testing.T) {
	w := newWorld()
	busy := make([]error, 40)
	for i := range busy {
		busy[i] = retryable("errcode -1: system busy")
	}
	w.failNext(ActivityUploadShipping, busy...)
	h := managedHarness(t, w)
	during := h.state(time.Hour + 15*time.Minute)
	h.signal(40*time.Hour, SignalWechatEvent, settlement(1))
	final := h.run()

	if during.Wechat == nil || during.Wechat.Uploaded || during.Wechat.UploadRounds < 1 || during.Wechat.UploadError == "" {
		t.Fatalf("during the busy spell: %+v", during.Wechat)
	}
	if final.Status != status.Completed || !final.Wechat.Uploaded || final.Wechat.UploadRounds < 2 {
		t.Fatalf("final %s, WeChat %+v", final.Status, final.Wechat)
	}
	if x := w.wxOrder(orderNo); x.uploads != 1 {
		t.Fatalf("WeChat took %d uploads", x.uploads)
	}
	if len(final.Flags) != 0 {
		t.Errorf("flagged %v for a busy spell of minutes", final.Flags)
	}
}

// WeChat refuses the shipment for good: the order is flagged for a person
// with WeChat's reason, and no round is tried again. A person reports it
// in WeChat's console; when WeChat then says the buyer confirmed, the
// order completes.
func TestRefusedUploadFlagsTheOrderForAPerson(t *testing.T) {
	w := newWorld()
	w.failNext(ActivityUploadShipping, refused("report the shipment: WeChat refused: errcode 10060014: 参数有误"))
	h := managedHarness(t, w)
	flagged := h.state(2 * time.Hour)
	h.at(3*24*time.Hour, func() { w.wxSetState(orderNo, WechatSettled) }) // a person shipped it in the console
	final := h.run()

	if !slices.Contains(flagged.Flags, FlagShippingUploadFailed) || flagged.Wechat.UploadRefused == "" {
		t.Fatalf("after the refusal: flags %v, WeChat %+v", flagged.Flags, flagged.Wechat)
	}
	if n := w.count(ActivityUploadShipping); n != 1 {
		t.Errorf("a refused upload was tried %d times", n)
	}
	if final.Status != status.Completed || h.elapsed() < 7*24*time.Hour {
		t.Fatalf("final %s after %v", final.Status, h.elapsed())
	}
	if !slices.Contains(w.order(orderNo).flags, FlagShippingUploadFailed) {
		t.Errorf("the row is not flagged: %v", w.order(orderNo).flags)
	}
}

// A shipment of before shipping management (a tracking number, no
// logistics type) cannot be reported: flagged, as refused.
func TestShipmentWithoutLogisticsTypeIsFlaggedUnderShippingManagement(t *testing.T) {
	w := newWorld()
	w.wxManaged = true
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	flagged := h.state(2 * time.Hour)
	h.signal(3*time.Hour, SignalWechatEvent, settlement(1))
	final := h.run()

	if !slices.Contains(flagged.Flags, FlagShippingUploadFailed) {
		t.Fatalf("flags %v", flagged.Flags)
	}
	if final.Status != status.Completed {
		t.Fatalf("final %s", final.Status)
	}
}

// No event comes: at the auto-confirm time WeChat is asked; it says the
// buyer has not confirmed, so the order does not complete by itself: the
// buyer is reminded (once) and WeChat asked again with backoff, until it
// says receipt was confirmed.
func TestAutoConfirmTimeAsksWeChatAndKeepsWaiting(t *testing.T) {
	w := newWorld()
	h := managedHarness(t, w)
	h.in.AutoConfirm = 7 * 24 * time.Hour
	waiting := h.state(12 * 24 * time.Hour)
	h.at(12*24*time.Hour+time.Hour, func() { w.wxSetState(orderNo, WechatConfirmed) })
	final := h.run()

	if waiting.Status != status.Shipped || waiting.Wechat.Asks < 2 || !waiting.Wechat.Reminded {
		t.Fatalf("twelve days on: %s, WeChat %+v", waiting.Status, waiting.Wechat)
	}
	if final.Status != status.Completed {
		t.Fatalf("final %s", final.Status)
	}
	if e := h.completedAfter(final); e < 12*24*time.Hour || e > 16*24*time.Hour {
		t.Errorf("completed after %v: WeChat said so at 12 days, asked at most every 2 days", e)
	}
	if x := w.wxOrder(orderNo); x.reminded != 1 {
		t.Errorf("the buyer was reminded %d times, want once", x.reminded)
	}
	if got := final.Transitions[len(final.Transitions)-1].Why; got != "WeChat says the buyer confirmed receipt (receipt confirmed)" {
		t.Errorf("completed because %q", got)
	}
}

// WeChat does not manage the shop (WECHAT_SHIPPING_MANAGED=off, or auto
// and is_trade_managed false): nothing is asked of it, and the order
// completes as before — by itself, or on the user's word.
func TestOrderOfAShopWeChatDoesNotManageCompletesAsBefore(t *testing.T) {
	for _, confirm := range []bool{false, true} {
		w := newWorld()
		h := newHarness(t, w)
		h.update(time.Minute, UpdatePay)
		h.signal(2*time.Minute, SignalPayment, h.payment())
		h.update(time.Hour, UpdateShip, expressShipment)
		if confirm {
			h.update(5*time.Hour, UpdateConfirm)
		}
		final := h.run()

		if final.Status != status.Completed {
			t.Fatalf("confirm %v: final %s", confirm, final.Status)
		}
		want := time.Hour + DefaultAutoConfirm
		if confirm {
			want = 5 * time.Hour
		}
		if e := h.completedAfter(final); e < want || e > want+time.Minute {
			t.Errorf("confirm %v: completed after %v, want %v", confirm, e, want)
		}
		if w.count(ActivityQueryWechatShipping) != 0 || w.wxOrder(orderNo).uploads != 0 {
			t.Errorf("WeChat was asked or told though it does not manage the shop")
		}
		if final.Wechat == nil || final.Wechat.Managed == nil || *final.Wechat.Managed {
			t.Errorf("WeChat's view %+v, want managed false", final.Wechat)
		}
	}
}

// The mini-program's word is not enough: the user's confirmation
// completes the order only when WeChat says receipt was confirmed.
func TestUserConfirmationIsCheckedWithWeChat(t *testing.T) {
	w := newWorld()
	h := managedHarness(t, w)
	early := h.update(5*time.Hour, UpdateConfirm)
	h.at(6*time.Hour, func() { w.wxSetState(orderNo, WechatConfirmed) })
	late := h.update(7*time.Hour, UpdateConfirm)
	final := h.run()

	early.refusedWith(t, ErrTypeNotConfirmable)
	if v := late.view(t); v.Status != status.Completed {
		t.Fatalf("confirm after WeChat recorded it: %s", v.Status)
	}
	if final.Status != status.Completed || h.completedAfter(final) > 8*time.Hour {
		t.Fatalf("final %s after %v", final.Status, h.completedAfter(final))
	}
}

// WeChat says the payment was refunded while the order is SHIPPED and
// refunded nothing: flagged, no longer asked; an admin refund ends it.
func TestWeChatRefundedOutsideTheShopIsFlagged(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := managedHarness(t, w)
	h.at(2*time.Hour, func() { w.wxSetState(orderNo, WechatRefunded) })
	flagged := h.state(8 * 24 * time.Hour)
	h.update(9*24*time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "refunded in the merchant platform"})
	final := h.run()

	if flagged.Status != status.Shipped || !slices.Contains(flagged.Flags, FlagUnexpectedRefund) || !flagged.Wechat.StoppedAsking {
		t.Fatalf("after WeChat said refunded: %s %v %+v", flagged.Status, flagged.Flags, flagged.Wechat)
	}
	if n := w.count(ActivityQueryWechatShipping); n != 1 {
		t.Errorf("WeChat asked %d times, want once", n)
	}
	if final.Status != status.Refunded {
		t.Fatalf("final %s", final.Status)
	}
}

func TestShippedOrderUnderShippingManagementCanBeRefunded(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	h := managedHarness(t, w)
	h.update(3*time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "parcel lost"})
	final := h.run()

	if final.Status != status.Refunded || w.wxOrder(orderNo).uploads != 1 {
		t.Fatalf("final %s, uploads %d", final.Status, w.wxOrder(orderNo).uploads)
	}
	if w.restored[orderNo] != 0 {
		t.Errorf("stock restored for goods that left the shop")
	}
}

// WeChat reminds the shop to ship a paid order: flagged once, whatever
// the number of reminders; an event of another payment changes nothing.
func TestReminderToShipFlagsThePaidOrderOnce(t *testing.T) {
	w := newWorld()
	w.wxManaged = true
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	remind := func() any { return WechatEvent{Event: EventRemindShipping, TransactionID: "tx-" + orderNo} }
	h.signal(48*time.Hour, SignalWechatEvent, remind)
	h.signal(72*time.Hour, SignalWechatEvent, remind)
	h.signal(73*time.Hour, SignalWechatEvent, func() any {
		return WechatEvent{Event: EventOrderSettlement, TransactionID: "tx-somebody-else"}
	})
	flagged := h.state(74 * time.Hour)
	h.update(75*time.Hour, UpdateShip, expressShipment)
	h.signal(80*time.Hour, SignalWechatEvent, settlement(2))
	final := h.run()

	// (No WeChat view yet: nothing was asked of it, and the other payment's event was ignored.)
	if flagged.Status != status.Paid || !slices.Equal(flagged.Flags, []string{FlagShippingReminded}) || flagged.Wechat != nil {
		t.Fatalf("after the reminders: %s %v %+v", flagged.Status, flagged.Flags, flagged.Wechat)
	}
	if n := w.count(ActivityFlagOrder); n != 1 {
		t.Errorf("FlagOrder ran %d times for two reminders", n)
	}
	if final.Status != status.Completed {
		t.Fatalf("final %s", final.Status)
	}
	if got := final.Transitions[len(final.Transitions)-1].Why; got != "WeChat reports receipt confirmed by WeChat, after its deadline (settlement event)" {
		t.Errorf("completed because %q", got)
	}
}

// Orders that started before ChangeWechatShipping keep the old path to
// their end: nothing is reported, and they complete by themselves.
func TestOrdersStartedBeforeShippingManagementKeepTheOldPath(t *testing.T) {
	w := newWorld()
	w.wxManaged = true
	h := newHarness(t, w)
	h.env.OnGetVersion(ChangeWechatShipping, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, expressShipment)
	final := h.run()

	if final.Status != status.Completed || h.elapsed() < time.Hour+DefaultAutoConfirm {
		t.Fatalf("final %s after %v", final.Status, h.elapsed())
	}
	if w.count(ActivityUploadShipping) != 0 || w.count(ActivityQueryWechatShipping) != 0 || final.Wechat != nil {
		t.Fatalf("an old order took the new path: %d uploads, %d questions, %+v",
			w.count(ActivityUploadShipping), w.count(ActivityQueryWechatShipping), final.Wechat)
	}
}

// A refund asked for while WeChat is too busy to take the shipment waits
// for the round under way at most, not for the next ones.
func TestRefundDuringABusySpellGoesBeforeTheNextUploadRound(t *testing.T) {
	w := newWorld()
	w.refundSettlesAs = status.RefundSuccess
	busy := make([]error, 200)
	for i := range busy {
		busy[i] = retryable("errcode -1: system busy")
	}
	w.failNext(ActivityUploadShipping, busy...)
	h := managedHarness(t, w)
	h.update(time.Hour+5*time.Minute, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "the shop cannot ship after all"})
	final := h.run()

	if final.Status != status.Refunded {
		t.Fatalf("final %s", final.Status)
	}
	if e := h.elapsed(); e > time.Hour+shippingUploadRound+shippingUploadRetryFirst {
		t.Errorf("refunded after %v: it waited for more than the round under way", e)
	}
	if x := w.wxOrder(orderNo); x.uploads != 0 {
		t.Errorf("WeChat took %d uploads", x.uploads)
	}
}
