package workflows

import (
	"errors"
	"slices"
	"testing"
	"time"

	"ordersaga/internal/status"
)

// Found by the chaos run (order 2026112320161664136067): a refund request
// that arrives while the order is already moving to another status — the
// auto-confirm timer fired and the SetOrderStatus(COMPLETED) activity is
// running (here: retrying, the database is restarting) — passes the
// validator (the status is still SHIPPED). It used to be answered as a
// success and never acted on; now the transition that wins refuses it.
func TestRefundRequestRacingTheAutoConfirmIsNotAnsweredWithSuccess(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.in.AutoConfirm = 72 * time.Hour
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	// The auto-confirm fires at 73 h; its database write fails once (retried after 0.5 s).
	h.at(2*time.Hour, func() { w.failNext(ActivitySetOrderStatus, errors.New("database is restarting")) })
	req := h.update(73*time.Hour+100*time.Millisecond, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "customer service"})
	h.signal(74*time.Hour, SignalRefund, func() any {
		if _, ok := w.refunds[OrderRefundNo(orderNo, 1)]; !ok {
			return RefundNotice{OutRefundNo: "nothing", Status: status.RefundSuccess}
		}
		return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
	})
	final := h.run()

	// The completion was under way first: the refund is refused, not lost.
	req.refusedWith(t, ErrTypeNotRefundable)
	if final.Status != status.Completed || w.count(ActivityRequestRefund) != 0 {
		t.Fatalf("order ended %s after %d refund requests to WeChat", final.Status, w.count(ActivityRequestRefund))
	}
}

// The same race before shipping: a user's refund request (allowed only
// before shipping) arrives while the ship's SetOrderStatus(SHIPPED) runs; it
// used to be taken after the order shipped. Now the ship refuses it.
func TestUserRefundRacingTheShipIsNotTakenAfterShipping(t *testing.T) {
	w := newWorld()
	h := newHarness(t, w)
	h.update(time.Minute, UpdatePay)
	h.signal(2*time.Minute, SignalPayment, h.payment())
	h.at(30*time.Minute, func() { w.failNext(ActivitySetOrderStatus, errors.New("database is restarting")) })
	h.update(time.Hour, UpdateShip, ShipRequest{TrackingNo: "SF1"})
	req := h.update(time.Hour+100*time.Millisecond, UpdateRequestRefund, RefundRequest{By: ByUser, Reason: "changed my mind"})
	h.signal(2*time.Hour, SignalRefund, func() any {
		if _, ok := w.refunds[OrderRefundNo(orderNo, 1)]; !ok {
			return RefundNotice{OutRefundNo: "nothing", Status: status.RefundSuccess}
		}
		return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess)
	})
	h.update(3*time.Hour, UpdateConfirm)
	final := h.run()

	// The ship was under way first: a user may not refund a shipped order.
	req.refusedWith(t, ErrTypeNotRefundable)
	want := []status.Order{status.Paid, status.Shipped, status.Completed}
	if got := statuses(final); !slices.Equal(got, want) || w.count(ActivityRequestRefund) != 0 {
		t.Fatalf("transitions %v (want %v), %d refund requests to WeChat", got, want, w.count(ActivityRequestRefund))
	}
}

// A ship (or a confirm) that arrives while a refund is starting is refused
// once the refund wins; the order is refunded, not shipped.
func TestShipOrConfirmRacingARefundIsRefused(t *testing.T) {
	tests := []struct {
		name      string
		shipFirst bool
		update    string
		arg       []any
		wantType  string
	}{
		{"ship racing a refund of a paid order", false, UpdateShip, []any{ShipRequest{TrackingNo: "SF2"}}, ErrTypeNotShippable},
		{"confirm racing an admin refund of a shipped order", true, UpdateConfirm, nil, ErrTypeNotConfirmable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			h := newHarness(t, w)
			h.update(time.Minute, UpdatePay)
			h.signal(2*time.Minute, SignalPayment, h.payment())
			if tt.shipFirst {
				h.update(10*time.Minute, UpdateShip, ShipRequest{})
			}
			// The refund's REFUNDING write fails once: the other request comes meanwhile.
			h.at(30*time.Minute, func() { w.failNext(ActivitySetOrderStatus, errors.New("database is restarting")) })
			refund := h.update(time.Hour, UpdateRequestRefund, RefundRequest{By: ByAdmin, Reason: "out of season"})
			other := h.update(time.Hour+100*time.Millisecond, tt.update, tt.arg...)
			h.signal(2*time.Hour, SignalRefund, func() any { return w.settleRefundAtWechat(OrderRefundNo(orderNo, 1), status.RefundSuccess) })
			final := h.run()

			other.refusedWith(t, tt.wantType)
			if v := refund.view(t); v.Status != status.Refunding && v.Status != status.Refunded {
				t.Fatalf("refund answered %s", v.Status)
			}
			if final.Status != status.Refunded {
				t.Fatalf("final %s %v", final.Status, statuses(final))
			}
		})
	}
}
