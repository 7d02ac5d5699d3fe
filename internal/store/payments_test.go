package store_test

import (
	"reflect"
	"testing"
	"time"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestRecordPayment_OncePerTransaction(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		success := time.Date(2025, 5, 1, 12, 0, 1, 0, time.FixedZone("CST", 8*3600))
		p := store.Payment{TransactionID: "4200000001", OrderNo: "SO-PAY-1", AmountFen: 4498,
			PayerOpenID: "o-alice", AppID: "wxapp", MchID: "1900000109", TradeState: "SUCCESS", SuccessTime: &success}

		created, err := s.RecordPayment(ctx, p)
		noErr(t, err)
		if !created {
			t.Error("first RecordPayment: created = false")
		}
		dup := p
		dup.AmountFen = 1 // a forged or garbled repeat must not overwrite
		created, err = s.RecordPayment(ctx, dup)
		noErr(t, err)
		if created {
			t.Error("second RecordPayment: created = true")
		}

		got, err := s.GetPayment(ctx, "4200000001")
		noErr(t, err)
		if got.AmountFen != 4498 || got.OrderNo != "SO-PAY-1" || got.PayerOpenID != "o-alice" || got.AppID != "wxapp" ||
			got.MchID != "1900000109" || got.TradeState != "SUCCESS" || got.SuccessTime == nil ||
			!got.SuccessTime.Equal(success) || got.SuccessTime.Location() != time.UTC || got.ID == 0 {
			t.Errorf("stored payment %+v", got)
		}
		list, err := s.ListPayments(ctx, "SO-PAY-1")
		noErr(t, err)
		if len(list) != 1 || !reflect.DeepEqual(list[0], got) {
			t.Errorf("ListPayments = %+v", list)
		}
		_, err = s.GetPayment(ctx, "missing")
		wantErr(t, err, store.ErrNotFound)

		tests := []struct {
			name string
			p    store.Payment
		}{
			{"no transaction id", store.Payment{OrderNo: "SO", AmountFen: 1}},
			{"no order", store.Payment{TransactionID: "t", AmountFen: 1}},
			{"negative amount", store.Payment{TransactionID: "t", OrderNo: "SO", AmountFen: -1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.RecordPayment(t.Context(), tt.p)
				wantErr(t, err, store.ErrInvalidArgument)
			})
		}
	})
}

func TestRefunds_UpsertIsIdempotent(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		r := store.Refund{OutRefundNo: "RF-SO-1", OrderNo: "SO-1", TransactionID: "4200000001",
			RefundFen: 4498, TotalFen: 4498, Reason: "out of stock"}
		first, err := s.UpsertRefund(ctx, r)
		noErr(t, err)
		if first.ID == 0 || first.Status != status.RefundProcessing || first.RefundFen != 4498 || first.Reason != "out of stock" {
			t.Errorf("first upsert %+v", first)
		}
		again := r
		again.Reason = "changed"
		again.RefundFen = 1
		second, err := s.UpsertRefund(ctx, again)
		noErr(t, err)
		if !reflect.DeepEqual(second, first) {
			t.Errorf("second upsert %+v, want the stored %+v", second, first)
		}
		other, err := s.UpsertRefund(ctx, store.Refund{OutRefundNo: "RF-SO-1-b", OrderNo: "SO-1", RefundFen: 1, TotalFen: 4498})
		noErr(t, err)
		list, err := s.ListRefunds(ctx, "SO-1")
		noErr(t, err)
		if len(list) != 2 || !reflect.DeepEqual(list[0], first) || !reflect.DeepEqual(list[1], other) {
			t.Errorf("ListRefunds = %+v", list)
		}
		none, err := s.ListRefunds(ctx, "SO-2")
		noErr(t, err)
		if len(none) != 0 {
			t.Errorf("ListRefunds(other order) = %+v", none)
		}

		tests := []struct {
			name string
			r    store.Refund
		}{
			{"no out_refund_no", store.Refund{OrderNo: "SO", RefundFen: 1, TotalFen: 1}},
			{"no order", store.Refund{OutRefundNo: "x", RefundFen: 1, TotalFen: 1}},
			{"zero refund", store.Refund{OutRefundNo: "x", OrderNo: "SO", RefundFen: 0, TotalFen: 1}},
			{"refund above total", store.Refund{OutRefundNo: "x", OrderNo: "SO", RefundFen: 2, TotalFen: 1}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := s.UpsertRefund(t.Context(), tt.r)
				wantErr(t, err, store.ErrInvalidArgument)
			})
		}
	})
}

func TestRefunds_StatusUpdatesKeepTheFinalStatus(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		_, err := s.UpsertRefund(ctx, store.Refund{OutRefundNo: "RF-1", OrderNo: "SO-1", RefundFen: 10, TotalFen: 10})
		noErr(t, err)

		steps := []struct {
			name       string
			status     status.Refund
			refundID   string
			wantStatus status.Refund
			wantID     string
		}{
			{"accepted by WeChat", status.RefundProcessing, "50000001", status.RefundProcessing, "50000001"},
			{"notify says success", status.RefundSuccess, "", status.RefundSuccess, "50000001"},
			{"duplicate notify", status.RefundSuccess, "50000001", status.RefundSuccess, "50000001"},
			{"late query says processing", status.RefundProcessing, "", status.RefundSuccess, "50000001"},
			{"nonsense close after success", status.RefundClosed, "", status.RefundSuccess, "50000001"},
		}
		for _, st := range steps {
			noErr(t, s.UpdateRefundStatus(ctx, "RF-1", st.status, st.refundID))
			got, err := s.GetRefund(ctx, "RF-1")
			noErr(t, err)
			if got.Status != st.wantStatus || got.RefundID != st.wantID {
				t.Errorf("%s: status=%s refund_id=%s, want %s %s", st.name, got.Status, got.RefundID, st.wantStatus, st.wantID)
			}
		}

		// ABNORMAL is not final: a person can resolve it and WeChat then reports SUCCESS.
		_, err = s.UpsertRefund(ctx, store.Refund{OutRefundNo: "RF-2", OrderNo: "SO-1", RefundFen: 10, TotalFen: 10})
		noErr(t, err)
		noErr(t, s.UpdateRefundStatus(ctx, "RF-2", status.RefundAbnormal, ""))
		noErr(t, s.UpdateRefundStatus(ctx, "RF-2", status.RefundSuccess, "50000002"))
		got, err := s.GetRefund(ctx, "RF-2")
		noErr(t, err)
		if got.Status != status.RefundSuccess || got.RefundID != "50000002" {
			t.Errorf("RF-2 = %+v", got)
		}

		wantErr(t, s.UpdateRefundStatus(ctx, "RF-MISSING", status.RefundSuccess, ""), store.ErrNotFound)
		wantErr(t, s.UpdateRefundStatus(ctx, "RF-1", "", ""), store.ErrInvalidArgument)
		_, err = s.GetRefund(ctx, "RF-MISSING")
		wantErr(t, err, store.ErrNotFound)
	})
}
