package store

import (
	"cmp"
	"context"
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Stock moves are recorded in stock_ledger under the unique key
// (order_no, product_id, kind, refund_no). A product's stock changes only in
// the same transaction that inserted the matching ledger row, so a retried
// activity finds the row already there and changes nothing: an order is
// deducted at most once, restored at most once as a whole (refund_no '') or
// once per part refund, never restored without a deduction and never more
// than was deducted.

const insertLedgerSQL = `INSERT INTO stock_ledger (order_no, product_id, kind, quantity, created_at, refund_no)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (order_no, product_id, kind, refund_no) DO NOTHING`

// DeductStock takes the order's items out of stock, all of them or none, in one
// transaction. For each item it inserts a DEDUCT ledger row and, only when the row
// is new, runs UPDATE products SET stock = stock - q WHERE id = ? AND stock >= q.
// If a product lacks stock everything is rolled back and an *OutOfStockError is
// returned (errors.Is(err, ErrOutOfStock)). Called again for an order already
// deducted it does nothing and returns nil. ErrNotFound if the order has no items
// (it does not exist).
//
// Stock never goes negative: the conditional UPDATE (and the CHECK constraint)
// see to it, and concurrent deductions of the same product queue on its row lock
// (PostgreSQL) or on the database write lock (SQLite).
func (s *Store) DeductStock(ctx context.Context, orderNo string) (err error) {
	defer annotate(&err, "deduct stock for order %s", orderNo)
	return s.tx(ctx, func(tx *gorm.DB) error {
		items, err := orderItems(tx, orderNo)
		if err != nil {
			return err
		}
		ts := now()
		// Product id order: concurrent multi-item deductions lock rows in the same order.
		for _, it := range sortedItems(items) {
			res := tx.Exec(insertLedgerSQL, orderNo, it.ProductID, LedgerDeduct, it.Quantity, ts, "")
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // deducted by an earlier attempt
			}
			res = tx.Exec(`UPDATE products SET stock = stock - ?, updated_at = ? WHERE id = ? AND stock >= ?`,
				it.Quantity, ts, it.ProductID, it.Quantity)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				var available int64
				if err := tx.Model(&Product{}).Select("stock").Where("id = ?", it.ProductID).Scan(&available).Error; err != nil {
					return err
				}
				return &OutOfStockError{ProductID: it.ProductID, Name: it.Name, Requested: it.Quantity, Available: available}
			}
		}
		return nil
	})
}

// CheckOrderStock checks that every item of the order still has stock >= its
// quantity, reserving nothing (stock is deducted on payment). The first short
// item, by product id, is returned as an *OutOfStockError named as the order
// shows it (errors.Is(err, ErrOutOfStock)). ErrNotFound if the order has no
// items (it does not exist).
func (s *Store) CheckOrderStock(ctx context.Context, orderNo string) (err error) {
	defer annotate(&err, "check stock for order %s", orderNo)
	db := s.conn(ctx)
	items, err := orderItems(db, orderNo)
	if err != nil {
		return err
	}
	ids := make([]int64, len(items))
	for i, it := range items {
		ids[i] = it.ProductID
	}
	var stock []Product
	if err := db.Select("id", "stock").Where("id IN ?", ids).Find(&stock).Error; err != nil {
		return err
	}
	available := make(map[int64]int64, len(stock))
	for _, p := range stock {
		available[p.ID] = p.Stock
	}
	for _, it := range items { // ordered by product id
		if have := available[it.ProductID]; have < it.Quantity {
			return &OutOfStockError{ProductID: it.ProductID, Name: it.Name, Requested: it.Quantity, Available: have}
		}
	}
	return nil
}

// RestoreStock puts back what DeductStock took for this order, in one
// transaction: for each DEDUCT ledger row it inserts a RESTORE row and adds the
// quantity back only when that row is new. Without a deduction it is a no-op;
// called twice it restores once. A DeductStock after a RestoreStock of the same
// order does nothing (the DEDUCT row is still there).
func (s *Store) RestoreStock(ctx context.Context, orderNo string) (err error) {
	defer annotate(&err, "restore stock for order %s", orderNo)
	return s.tx(ctx, func(tx *gorm.DB) error {
		var deducted []StockLedger
		err := tx.Where("order_no = ? AND kind = ?", orderNo, LedgerDeduct).Order("product_id").Find(&deducted).Error
		if err != nil {
			return err
		}
		ts := now()
		for _, d := range deducted {
			res := tx.Exec(insertLedgerSQL, orderNo, d.ProductID, LedgerRestore, d.Quantity, ts, "")
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // restored by an earlier attempt
			}
			res = tx.Exec(`UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ?`, d.Quantity, ts, d.ProductID)
			if res.Error != nil {
				return res.Error
			}
		}
		return nil
	})
}

// RestoreRefundStock puts back the items of one part refund of the order
// (refundNo, its out_refund_no), in one transaction: for each item a RESTORE
// row of the refund, and the quantity added back only when that row is new.
// Called twice it restores once. An item the order never had deducted, or
// one that would bring the order's restorations of a product past its
// deduction, is ErrInvalidArgument and nothing is restored: the workflow
// never asks for it, and the stock must not grow from a mistake.
func (s *Store) RestoreRefundStock(ctx context.Context, orderNo, refundNo string, items []ItemQty) (err error) {
	defer annotate(&err, "restore stock of refund %s of order %s", refundNo, orderNo)
	if refundNo == "" {
		return invalid("empty refund number")
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		ts := now()
		seen := map[int64]bool{}
		// Product id order: concurrent restorations lock rows in the same order.
		for _, it := range sortedQty(items) {
			if it.Quantity <= 0 || seen[it.ProductID] {
				return invalid("product %d: quantity %d (or listed twice)", it.ProductID, it.Quantity)
			}
			seen[it.ProductID] = true
			// Locked: two refunds of one product restoring at once are
			// checked against the deduction one after the other.
			var rows []StockLedger
			err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
				Where("order_no = ? AND product_id = ?", orderNo, it.ProductID).Find(&rows).Error
			if err != nil {
				return err
			}
			var deducted, restored int64
			for _, r := range rows {
				switch {
				case r.Kind == LedgerDeduct:
					deducted += r.Quantity
				case r.RefundNo == refundNo:
					if r.Quantity != it.Quantity {
						return invalid("product %d: refund %s restored %d already, not %d", it.ProductID, refundNo, r.Quantity, it.Quantity)
					}
					restored = -1 // restored by an earlier attempt
				default:
					if restored >= 0 {
						restored += r.Quantity
					}
				}
			}
			if restored < 0 {
				continue
			}
			if restored+it.Quantity > deducted {
				return invalid("product %d: restoring %d more than the %d deducted (%d restored already)", it.ProductID, it.Quantity, deducted, restored)
			}
			res := tx.Exec(insertLedgerSQL, orderNo, it.ProductID, LedgerRestore, it.Quantity, ts, refundNo)
			if res.Error != nil {
				return res.Error
			}
			if res.RowsAffected == 0 {
				continue // a concurrent attempt restored it
			}
			if err := tx.Exec(`UPDATE products SET stock = stock + ?, updated_at = ? WHERE id = ?`, it.Quantity, ts, it.ProductID).Error; err != nil {
				return err
			}
		}
		return nil
	})
}

func sortedQty(items []ItemQty) []ItemQty {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b ItemQty) int { return cmp.Compare(a.ProductID, b.ProductID) })
	return out
}

// StockLedger lists the ledger rows of an order in the order they were written.
func (s *Store) StockLedger(ctx context.Context, orderNo string) (_ []StockLedger, err error) {
	defer annotate(&err, "stock ledger of order %s", orderNo)
	var rows []StockLedger
	if err := s.conn(ctx).Where("order_no = ?", orderNo).Order("id").Find(&rows).Error; err != nil {
		return nil, err
	}
	return rows, nil
}

// orderItems returns the order's items, ErrNotFound when there are none (an
// order always has items).
func orderItems(tx *gorm.DB, orderNo string) ([]OrderItem, error) {
	var items []OrderItem
	if err := tx.Where("order_no = ?", orderNo).Order("product_id").Find(&items).Error; err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, notFound(gorm.ErrRecordNotFound, "order %s", orderNo)
	}
	return items, nil
}
