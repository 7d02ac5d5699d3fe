package activities_test

import (
	"strconv"
	"testing"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

// Part refunds (ChangePartialRefunds): each one its own refund at WeChat,
// with its goods, settled once — refunded_fen counted and its goods'
// stock restored once however often it runs.

// partRefund is the RequestRefund input of part n of the coffee order:
// its goods priced as the order was.
func partRefund(o workflows.CreatedOrder, n workflows.PaymentNotice, seq int, items ...workflows.PricedItem) workflows.RequestRefundInput {
	var fen int64
	for _, it := range items {
		fen += it.UnitPriceFen * it.Quantity
	}
	return workflows.RequestRefundInput{OrderNo: o.OrderNo, TransactionID: n.TransactionID, OutRefundNo: workflows.OrderRefundNo(o.OrderNo, seq),
		RefundFen: fen, TotalFen: o.TotalFen, Reason: "broken", Items: items}
}

// lineOf is n of the order's line of product p.
func lineOf(o workflows.CreatedOrder, i int, n int64) workflows.PricedItem {
	it := o.Items[i]
	it.Quantity = n
	return it
}

func TestRequestPartRefundTwiceRefundsOnceWithItsGoods(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("P1000001")
		mug := lineOf(o, 1, 1)
		in := partRefund(o, n, 1, mug)
		res := f.twice(o.OrderNo, workflows.ActivityRequestRefund, in)
		if got := get[workflows.RefundNotice](t, res[1]); got.Status != status.RefundProcessing || got.RefundFen != 3900 {
			t.Errorf("second attempt: %+v", got)
		}
		v, _ := f.sim.Transaction(o.OrderNo)
		if len(v.Refunds) != 1 || v.Refunds[0].RefundFen != 3900 || len(v.Refunds[0].Goods) != 1 {
			t.Fatalf("refunds at WeChat %+v, want one of 3900 fen with its goods", v.Refunds)
		}
		g := v.Refunds[0].Goods[0]
		if g.MerchantGoodsID != strconv.FormatInt(mug.ProductID, 10) || g.UnitPrice != 3900 || g.RefundQuantity != 1 || g.RefundAmount != 3900 || g.GoodsName != mug.Name {
			t.Errorf("goods_detail %+v", g)
		}
		row, err := st.GetRefund(f.ctx, in.OutRefundNo)
		if err != nil || len(row.Items) != 1 || row.Items[0].ProductID != mug.ProductID || row.Items[0].Quantity != 1 {
			t.Errorf("refund row %+v %v", row, err)
		}

		// The same number asked for other goods is a bug, not a retry.
		other := partRefund(o, n, 1, lineOf(o, 0, 1))
		other.RefundFen = 3900
		other.Items[0].UnitPriceFen = 3900
		_, err = f.run(workflows.ActivityRequestRefund, other)
		wantNonRetryable(t, err, workflows.ErrTypeInvalidOrder)
	})
}

func TestSettlePartTwiceCountsAndRestoresOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st, func(o *fxOptions) { o.sim = func(so *paysim.Options) { so.RefundInterval = -1 } })
		o, n := f.paidOrder("P1000002")
		coffee, mug := lineOf(o, 0, 1), lineOf(o, 1, 1)
		products, _ := st.ListProducts(f.ctx)
		if products[0].Stock != 8 || products[1].Stock != 4 {
			t.Fatalf("stock after the deduction: %+v", products)
		}
		first := partRefund(o, n, 1, mug)
		f.must(workflows.ActivityRequestRefund, first)
		settle := workflows.SettleRefundInput{OrderNo: o.OrderNo, Refund: f.settled(first.OutRefundNo, paysim.RefundSuccess),
			OrderRefund: true, RestoreStock: true, Part: true, Items: first.Items}
		res := f.twice(o.OrderNo, workflows.ActivitySettleRefund, settle)
		for i, v := range res {
			if got := get[workflows.OrderStatusResult](t, v); got.Status != status.Paid || got.RefundedFen != 3900 {
				t.Errorf("attempt %d: %+v, want PAID with 3900 fen refunded", i+1, got)
			}
		}
		products, _ = st.ListProducts(f.ctx)
		if products[0].Stock != 8 || products[1].Stock != 5 {
			t.Errorf("stock after the mug's refund: %d %d, want 8 5", products[0].Stock, products[1].Stock)
		}

		// A second part, of a coffee: counted on top, its stock back once.
		second := partRefund(o, n, 2, coffee)
		f.must(workflows.ActivityRequestRefund, second)
		settle2 := workflows.SettleRefundInput{OrderNo: o.OrderNo, Refund: f.settled(second.OutRefundNo, paysim.RefundSuccess),
			OrderRefund: true, RestoreStock: true, Part: true, Items: second.Items}
		f.twice(o.OrderNo, workflows.ActivitySettleRefund, settle2)
		row := f.getOrder(o.OrderNo)
		products, _ = st.ListProducts(f.ctx)
		if row.Status != status.Paid || row.RefundedFen != 3900+8800 || products[0].Stock != 9 || products[1].Stock != 5 {
			t.Errorf("after two parts: %s, refunded %d, stock %d %d; want PAID, 12700, 9 5", row.Status, row.RefundedFen, products[0].Stock, products[1].Stock)
		}
		if kinds := ledgerKinds(t, st, o.OrderNo); kinds[store.LedgerRestore] != 2 {
			t.Errorf("ledger %v, want a RESTORE per part", kinds)
		}
	})
}

func TestSettleFailedPartFlagsTheOrderAndKeepsItsStatus(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, n := f.paidOrder("P1000003")
		in := partRefund(o, n, 1, lineOf(o, 1, 1))
		f.must(workflows.ActivityRequestRefund, in)
		settle := workflows.SettleRefundInput{OrderNo: o.OrderNo, Refund: f.settled(in.OutRefundNo, paysim.RefundAbnormal),
			OrderRefund: true, RestoreStock: false, Part: true, Items: in.Items}
		f.twice(o.OrderNo, workflows.ActivitySettleRefund, settle)
		row := f.getOrder(o.OrderNo)
		products, _ := st.ListProducts(f.ctx)
		if row.Status != status.Paid || row.Flag != workflows.FlagRefundFailed || row.RefundedFen != 0 || products[1].Stock != 4 {
			t.Errorf("order %s flag %q refunded %d, mug stock %d; want PAID, REFUND_FAILED, 0, 4", row.Status, row.Flag, row.RefundedFen, products[1].Stock)
		}
	})
}
