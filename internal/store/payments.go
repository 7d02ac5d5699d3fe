package store

import (
	"context"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"ordersaga/internal/status"
)

// RecordPayment stores a payment reported by WeChat Pay, once per transaction_id:
// created is true for the first call and false for every repeat (a duplicated
// notify, a query after a notify); the stored row is never overwritten.
func (s *Store) RecordPayment(ctx context.Context, p Payment) (created bool, err error) {
	defer annotate(&err, "record payment %s", p.TransactionID)
	switch {
	case strings.TrimSpace(p.TransactionID) == "":
		return false, invalid("empty transaction_id")
	case strings.TrimSpace(p.OrderNo) == "":
		return false, invalid("empty order_no")
	case p.AmountFen < 0:
		return false, invalid("negative amount %d", p.AmountFen)
	}
	p.ID = 0
	p.CreatedAt = now()
	p.SuccessTime = dbTimePtr(p.SuccessTime)
	res := s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "transaction_id"}},
		DoNothing: true,
	}).Create(&p)
	if res.Error != nil {
		return false, res.Error
	}
	return res.RowsAffected > 0, nil
}

// GetPayment returns the payment with this WeChat transaction_id, ErrNotFound if none.
func (s *Store) GetPayment(ctx context.Context, transactionID string) (_ Payment, err error) {
	defer annotate(&err, "get payment")
	var p Payment
	if err := s.conn(ctx).Where("transaction_id = ?", transactionID).Take(&p).Error; err != nil {
		return Payment{}, notFound(err, "payment %s", transactionID)
	}
	return p, nil
}

// ListPayments lists the payments recorded for an order, oldest first.
func (s *Store) ListPayments(ctx context.Context, orderNo string) (_ []Payment, err error) {
	defer annotate(&err, "list payments of order %s", orderNo)
	var ps []Payment
	if err := s.conn(ctx).Where("order_no = ?", orderNo).Order("id").Find(&ps).Error; err != nil {
		return nil, err
	}
	return ps, nil
}

// UpsertRefund records a refund request: inserted when out_refund_no is new,
// otherwise the stored refund is returned unchanged (a retry). Status defaults
// to status.RefundProcessing. RefundFen must be > 0 and <= TotalFen.
func (s *Store) UpsertRefund(ctx context.Context, r Refund) (_ Refund, err error) {
	defer annotate(&err, "upsert refund %s", r.OutRefundNo)
	switch {
	case strings.TrimSpace(r.OutRefundNo) == "":
		return Refund{}, invalid("empty out_refund_no")
	case strings.TrimSpace(r.OrderNo) == "":
		return Refund{}, invalid("empty order_no")
	case r.RefundFen <= 0 || r.RefundFen > r.TotalFen:
		return Refund{}, invalid("refund %d fen of a %d fen payment", r.RefundFen, r.TotalFen)
	}
	if len(r.Items) > 0 {
		var sum int64
		for _, it := range r.Items {
			line, ok := mulFen(it.UnitPriceFen, it.Quantity)
			if it.ProductID <= 0 || it.Quantity <= 0 || it.UnitPriceFen < 0 || !ok {
				return Refund{}, invalid("refund %s: item product %d quantity %d price %d", r.OutRefundNo, it.ProductID, it.Quantity, it.UnitPriceFen)
			}
			sum += line
		}
		if sum != r.RefundFen {
			return Refund{}, invalid("refund %s: %d fen is not the sum of its items (%d fen)", r.OutRefundNo, r.RefundFen, sum)
		}
	}
	if r.Status == "" {
		r.Status = status.RefundProcessing
	}
	r.ID = 0
	r.CreatedAt = now()
	r.UpdatedAt = r.CreatedAt
	err = s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "out_refund_no"}},
		DoNothing: true,
	}).Create(&r).Error
	if err != nil {
		return Refund{}, err
	}
	return s.GetRefund(ctx, r.OutRefundNo)
}

// UpdateRefundStatus records the refund's status (from a refund notify or query)
// and WeChat's refund_id (an empty refundID leaves the stored one). A final
// status (SUCCESS or CLOSED) is never replaced by another one: a late or
// reordered report is ignored and nil returned. A report that changes nothing
// writes nothing (updated_at included). ErrNotFound if there is no such refund.
func (s *Store) UpdateRefundStatus(ctx context.Context, outRefundNo string, st status.Refund, refundID string) (err error) {
	defer annotate(&err, "update refund %s", outRefundNo)
	if strings.TrimSpace(string(st)) == "" {
		return invalid("empty refund status")
	}
	set := map[string]any{"status": string(st), "updated_at": now()}
	q := s.conn(ctx).Model(&Refund{}).
		Where("out_refund_no = ? AND (status NOT IN ? OR status = ?)",
			outRefundNo, []string{string(status.RefundSuccess), string(status.RefundClosed)}, string(st))
	if refundID != "" {
		set["refund_id"] = refundID
		q = q.Where("(status <> ? OR refund_id <> ?)", string(st), refundID)
	} else {
		q = q.Where("status <> ?", string(st))
	}
	res := q.Updates(set)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	_, err = s.GetRefund(ctx, outRefundNo)
	return err
}

// SetRefundID records WeChat's refund_id of a refund that has none yet; a
// refund that already has one keeps it (WeChat never changes it). Its status
// is left alone. ErrNotFound if there is no such refund.
func (s *Store) SetRefundID(ctx context.Context, outRefundNo, refundID string) (err error) {
	defer annotate(&err, "set refund_id of refund %s", outRefundNo)
	if strings.TrimSpace(refundID) == "" {
		return invalid("empty refund_id")
	}
	res := s.conn(ctx).Model(&Refund{}).
		Where("out_refund_no = ? AND refund_id = ''", outRefundNo).
		Updates(map[string]any{"refund_id": refundID, "updated_at": now()})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	_, err = s.GetRefund(ctx, outRefundNo)
	return err
}

// GetRefund returns a refund by out_refund_no, ErrNotFound if there is none.
func (s *Store) GetRefund(ctx context.Context, outRefundNo string) (_ Refund, err error) {
	defer annotate(&err, "get refund")
	var r Refund
	if err := s.conn(ctx).Where("out_refund_no = ?", outRefundNo).Take(&r).Error; err != nil {
		return Refund{}, notFound(err, "refund %s", outRefundNo)
	}
	return r, nil
}

// RecountRefunded sets the order's refunded_fen to the sum of the SUCCESS
// refunds of the payment it keeps (a stray payment's refund, of another
// transaction, is not the order's) and returns it. Recounted rather than
// added to, so that a retried or repeated settlement never counts a refund
// twice. ErrNotFound if there is no such order.
func (s *Store) RecountRefunded(ctx context.Context, orderNo string) (_ int64, err error) {
	defer annotate(&err, "recount the refunds of order %s", orderNo)
	var fen int64
	err = s.tx(ctx, func(tx *gorm.DB) error {
		sum := tx.Model(&Refund{}).Select("COALESCE(SUM(refunds.refund_fen), 0)").
			Where("refunds.order_no = orders.order_no AND refunds.transaction_id = orders.transaction_id AND refunds.transaction_id <> '' AND refunds.status = ?",
				string(status.RefundSuccess))
		res := tx.Model(&Order{}).Where("order_no = ? AND refunded_fen <> (?)", orderNo, sum).
			Updates(map[string]any{"refunded_fen": sum, "updated_at": now()})
		if res.Error != nil {
			return res.Error
		}
		o, err := getOrder(tx, orderNo)
		fen = o.RefundedFen
		return err
	})
	return fen, err
}

// ListRefunds lists an order's refunds, oldest first.
func (s *Store) ListRefunds(ctx context.Context, orderNo string) (_ []Refund, err error) {
	defer annotate(&err, "list refunds of order %s", orderNo)
	var rs []Refund
	if err := s.conn(ctx).Where("order_no = ?", orderNo).Order("id").Find(&rs).Error; err != nil {
		return nil, err
	}
	return rs, nil
}
