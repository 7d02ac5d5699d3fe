package activities_test

import (
	"reflect"
	"testing"
	"time"

	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
	"ordersaga/workflows"
)

// SaveAfterSale run twice (a lost completion) leaves the row as once, and
// the next step replaces it.
func TestSaveAfterSaleTwiceWritesTheStepOnce(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		f := newFx(t, st)
		o, _ := f.paidOrder("P2000001")
		at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
		a := workflows.AfterSale{ID: workflows.AfterSaleNo(o.OrderNo, 1), OrderNo: o.OrderNo, UserID: 1,
			Type: workflows.AfterSaleReturnAndRefund, Status: workflows.AfterSaleRequested,
			Items: []workflows.PricedItem{lineOf(o, 1, 1)}, RefundFen: o.Items[1].UnitPriceFen, Reason: "broken",
			CreatedAt: at, UpdatedAt: at, Deadline: at.Add(72 * time.Hour), Rev: 1}

		var rows [2]store.AfterSale
		for i := range rows {
			if _, err := f.run(workflows.ActivitySaveAfterSale, a); err != nil {
				t.Fatalf("attempt %d: %v", i+1, err)
			}
			row, err := st.GetAfterSale(f.ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			rows[i] = row
		}
		if !reflect.DeepEqual(rows[0], rows[1]) {
			t.Errorf("the second run changed the row:\n%+v\n%+v", rows[0], rows[1])
		}
		if r := rows[0]; r.Status != "REQUESTED" || r.RefundFen != a.RefundFen || len(r.Items) != 1 || r.Items[0].ProductID != a.Items[0].ProductID ||
			r.Deadline == nil || !r.Deadline.Equal(a.Deadline) {
			t.Fatalf("row %+v", r)
		}

		a.Status, a.UpdatedAt, a.Deadline, a.OutRefundNo = workflows.AfterSaleRefunded, at.Add(time.Hour), time.Time{}, workflows.OrderRefundNo(o.OrderNo, 1)
		if _, err := f.run(workflows.ActivitySaveAfterSale, a); err != nil {
			t.Fatal(err)
		}
		if r, err := st.GetAfterSale(f.ctx, a.ID); err != nil || r.Status != "REFUNDED" || r.Deadline != nil || r.OutRefundNo != a.OutRefundNo {
			t.Errorf("after the next step: %+v %v", r, err)
		}
	})
}
