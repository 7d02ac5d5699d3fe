package store_test

import (
	"errors"
	"testing"

	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/store/storetest"
)

func TestRestoreRefundStock_EachRefundRestoresItsItemsOnce(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 100, 10), mustProduct(t, s, 50, 5)
		o := mustOrder(t, s, u.ID, item(tea, 3), item(cup, 2))
		noErr(t, s.DeductStock(ctx, o.OrderNo))

		first := []store.ItemQty{{ProductID: tea.ID, Quantity: 1}}
		noErr(t, s.RestoreRefundStock(ctx, o.OrderNo, o.OrderNo+"-R1", first))
		noErr(t, s.RestoreRefundStock(ctx, o.OrderNo, o.OrderNo+"-R1", first)) // a retry
		if a, b := stockOf(t, s, tea.ID), stockOf(t, s, cup.ID); a != 8 || b != 3 {
			t.Fatalf("stocks after one tea refunded twice = %d, %d; want 8, 3", a, b)
		}
		second := []store.ItemQty{{ProductID: cup.ID, Quantity: 2}, {ProductID: tea.ID, Quantity: 2}}
		noErr(t, s.RestoreRefundStock(ctx, o.OrderNo, o.OrderNo+"-R2", second))
		noErr(t, s.RestoreRefundStock(ctx, o.OrderNo, o.OrderNo+"-R2", second))
		if a, b := stockOf(t, s, tea.ID), stockOf(t, s, cup.ID); a != 10 || b != 5 {
			t.Fatalf("stocks after everything refunded = %d, %d; want 10, 5", a, b)
		}
		if r := ledgerCount(t, s, o.OrderNo, store.LedgerRestore); r != 3 {
			t.Errorf("ledger has %d RESTORE rows, want 3 (one per refund and product)", r)
		}
	})
}

func TestRestoreRefundStock_RefusesMoreThanWasDeducted(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 100, 10), mustProduct(t, s, 50, 5)
		o := mustOrder(t, s, u.ID, item(tea, 2))
		notDeducted := mustOrder(t, s, u.ID, item(tea, 1))
		noErr(t, s.DeductStock(ctx, o.OrderNo))
		noErr(t, s.RestoreRefundStock(ctx, o.OrderNo, o.OrderNo+"-R1", []store.ItemQty{{ProductID: tea.ID, Quantity: 1}}))

		for _, tt := range []struct {
			name   string
			order  string
			refund string
			items  []store.ItemQty
		}{
			{"past the deduction", o.OrderNo, o.OrderNo + "-R2", []store.ItemQty{{ProductID: tea.ID, Quantity: 2}}},
			{"a product the order does not have", o.OrderNo, o.OrderNo + "-R3", []store.ItemQty{{ProductID: cup.ID, Quantity: 1}}},
			{"an order never deducted", notDeducted.OrderNo, notDeducted.OrderNo + "-R1", []store.ItemQty{{ProductID: tea.ID, Quantity: 1}}},
			{"the same refund with another quantity", o.OrderNo, o.OrderNo + "-R1", []store.ItemQty{{ProductID: tea.ID, Quantity: 2}}},
			{"a product listed twice", o.OrderNo, o.OrderNo + "-R4", []store.ItemQty{{ProductID: tea.ID, Quantity: 1}, {ProductID: tea.ID, Quantity: 1}}},
			{"no refund number", o.OrderNo, "", []store.ItemQty{{ProductID: tea.ID, Quantity: 1}}},
		} {
			if err := s.RestoreRefundStock(ctx, tt.order, tt.refund, tt.items); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: %v, want ErrInvalidArgument", tt.name, err)
			}
		}
		if a, b := stockOf(t, s, tea.ID), stockOf(t, s, cup.ID); a != 9 || b != 5 {
			t.Errorf("stocks = %d, %d; want 9, 5 (only the first refund restored)", a, b)
		}
	})
}

func TestRecountRefunded_SumsTheSucceededRefundsOfTheOrdersPayment(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea, cup := mustProduct(t, s, 1200, 10), mustProduct(t, s, 8200, 5)
		o := mustOrder(t, s, u.ID, item(tea, 1), item(cup, 2)) // ¥176.00
		tx := "4200000000" + o.OrderNo
		_, _, err := s.TransitionOrder(ctx, o.OrderNo, []status.Order{status.Pending}, status.Paid, store.OrderUpdate{TransactionID: &tx})
		noErr(t, err)
		refund := func(no, txID string, fen int64, items []store.RefundItem, st status.Refund) {
			t.Helper()
			_, err := s.UpsertRefund(ctx, store.Refund{OutRefundNo: no, OrderNo: o.OrderNo, TransactionID: txID, RefundFen: fen, TotalFen: o.TotalFen, Items: items})
			noErr(t, err)
			noErr(t, s.UpdateRefundStatus(ctx, no, st, ""))
		}
		teaLine := []store.RefundItem{{ProductID: tea.ID, Name: tea.Name, UnitPriceFen: 1200, Quantity: 1}}
		refund(o.OrderNo+"-R1", tx, 1200, teaLine, status.RefundSuccess)
		refund(o.OrderNo+"-R2", tx, 8200, []store.RefundItem{{ProductID: cup.ID, UnitPriceFen: 8200, Quantity: 1}}, status.RefundProcessing)
		refund(o.OrderNo+"-R3", tx, 8200, []store.RefundItem{{ProductID: cup.ID, UnitPriceFen: 8200, Quantity: 1}}, status.RefundClosed)
		refund("S4200000999", "4200000999", 17600, nil, status.RefundSuccess) // a stray payment's

		for range 2 { // recounting twice counts once
			fen, err := s.RecountRefunded(ctx, o.OrderNo)
			noErr(t, err)
			if fen != 1200 {
				t.Fatalf("refunded = %d fen, want 1200 (the succeeded refund of the order's payment)", fen)
			}
		}
		got, err := s.GetRefund(ctx, o.OrderNo+"-R1")
		noErr(t, err)
		if len(got.Items) != 1 || got.Items[0] != teaLine[0] {
			t.Errorf("refund items = %+v, want %+v", got.Items, teaLine)
		}
		if _, err := s.RecountRefunded(ctx, "SO-MISSING"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing order: %v, want ErrNotFound", err)
		}
	})
}

func TestUpsertRefund_ItemsMustAddUpToTheAmount(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s)
		tea := mustProduct(t, s, 1200, 10)
		o := mustOrder(t, s, u.ID, item(tea, 2))
		_, err := s.UpsertRefund(t.Context(), store.Refund{OutRefundNo: o.OrderNo + "-R1", OrderNo: o.OrderNo, RefundFen: 1000, TotalFen: 2400,
			Items: []store.RefundItem{{ProductID: tea.ID, UnitPriceFen: 1200, Quantity: 1}}})
		wantErr(t, err, store.ErrInvalidArgument)
	})
}

func TestSchema_RefundedFenStaysWithinTheTotal(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		u := mustUser(t, s)
		tea := mustProduct(t, s, 1200, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		for _, fen := range []int64{-1, 1201} {
			if err := s.DB().Exec(`UPDATE orders SET refunded_fen = ? WHERE order_no = ?`, fen, o.OrderNo).Error; err == nil {
				t.Errorf("refunded_fen %d of a 1200 fen order was accepted", fen)
			}
		}
	})
}

// The rebuilt SQLite stock_ledger (0005) keeps what 0001 gave it: the index,
// the checks and one deduction per order and product.
func TestSchema_StockLedgerKeepsItsIndexAndChecksAfterTheRefundNumber(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		u := mustUser(t, s)
		tea := mustProduct(t, s, 100, 10)
		o := mustOrder(t, s, u.ID, item(tea, 1))
		noErr(t, s.DeductStock(ctx, o.OrderNo))

		q := `SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'stock_ledger_product_id_idx'`
		if s.Dialect() == store.DialectSQLite {
			q = `SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'stock_ledger_product_id_idx'`
		}
		var n int64
		noErr(t, s.DB().Raw(q).Scan(&n).Error)
		if n != 1 {
			t.Errorf("index stock_ledger_product_id_idx: %d found", n)
		}
		for _, bad := range []struct{ name, sql string }{
			{"a second deduction", `INSERT INTO stock_ledger (order_no, product_id, kind, quantity, created_at) VALUES (?, ?, 'DEDUCT', 1, CURRENT_TIMESTAMP)`},
			{"an unknown kind", `INSERT INTO stock_ledger (order_no, product_id, kind, quantity, created_at, refund_no) VALUES (?, ?, 'STEAL', 1, CURRENT_TIMESTAMP, 'x')`},
			{"a zero quantity", `INSERT INTO stock_ledger (order_no, product_id, kind, quantity, created_at, refund_no) VALUES (?, ?, 'RESTORE', 0, CURRENT_TIMESTAMP, 'x')`},
		} {
			if err := s.DB().Exec(bad.sql, o.OrderNo, tea.ID).Error; err == nil {
				t.Errorf("%s was accepted", bad.name)
			}
		}
		if err := s.DB().Exec(`INSERT INTO stock_ledger (order_no, product_id, kind, quantity, created_at, refund_no) VALUES ('SO-NONE', ?, 'RESTORE', 1, CURRENT_TIMESTAMP, 'x')`, tea.ID).Error; err == nil {
			t.Errorf("a row of an order that does not exist was accepted (foreign key)")
		}
	})
}
