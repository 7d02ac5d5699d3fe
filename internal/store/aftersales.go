package store

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm/clause"
)

// AfterSale is one after-sale of an order as its row holds it: written by
// the order's workflow at each step (SaveAfterSale), read by the admin's
// list and the API's answers. The workflow keeps the truth; the row is its
// copy for queries.
type AfterSale struct {
	ID                   string       `gorm:"column:id;primaryKey" json:"id"`
	OrderNo              string       `gorm:"column:order_no" json:"order_no"`
	UserID               int64        `gorm:"column:user_id" json:"user_id"`
	Type                 string       `gorm:"column:type" json:"type"`
	Status               string       `gorm:"column:status" json:"status"`
	Items                []RefundItem `gorm:"column:items;serializer:json;not null" json:"items"`
	Reason               string       `gorm:"column:reason" json:"reason"`
	Photos               []string     `gorm:"column:photos;serializer:json;not null" json:"photos"`
	Note                 string       `gorm:"column:note" json:"note"`
	ReturnExpressCompany string       `gorm:"column:return_express_company" json:"return_express_company,omitempty"`
	ReturnTrackingNo     string       `gorm:"column:return_tracking_no" json:"return_tracking_no,omitempty"`
	OutRefundNo          string       `gorm:"column:out_refund_no" json:"out_refund_no,omitempty"`
	RefundFen            int64        `gorm:"column:refund_fen" json:"refund_fen"`
	CreatedAt            time.Time    `gorm:"column:created_at" json:"created_at"`
	UpdatedAt            time.Time    `gorm:"column:updated_at" json:"updated_at"`
	Deadline             *time.Time   `gorm:"column:deadline" json:"deadline,omitempty"`
}

// TableName implements gorm's tabler.
func (AfterSale) TableName() string { return "after_sales" }

// Open after-sale statuses (the workflow's AfterSaleStatus.Open): the
// admin's list of what awaits someone.
var openAfterSaleStatuses = []string{"REQUESTED", "APPROVED", "AWAITING_RETURN", "RETURNED", "RECEIVED"}

// SaveAfterSale upserts the after-sale's row by its ID with the step's
// state. Idempotent: the same step written twice leaves one row as once,
// and an older step (a retried attempt that lost the race, its UpdatedAt
// earlier) never overwrites a newer one.
func (s *Store) SaveAfterSale(ctx context.Context, a AfterSale) (err error) {
	defer annotate(&err, "save after-sale %s", a.ID)
	switch {
	case strings.TrimSpace(a.ID) == "" || strings.TrimSpace(a.OrderNo) == "":
		return invalid("after-sale without id or order_no")
	case a.Type != "refund_only" && a.Type != "return_and_refund":
		return invalid("after-sale type %q", a.Type)
	case a.RefundFen < 0:
		return invalid("after-sale refund_fen %d", a.RefundFen)
	}
	if a.Items == nil {
		a.Items = []RefundItem{}
	}
	if a.Photos == nil {
		a.Photos = []string{}
	}
	a.CreatedAt, a.UpdatedAt = dbTime(a.CreatedAt), dbTime(a.UpdatedAt)
	a.Deadline = dbTimePtr(a.Deadline)
	return s.conn(ctx).Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "id"}},
		DoUpdates: clause.AssignmentColumns([]string{"status", "items", "reason", "photos", "note",
			"return_express_company", "return_tracking_no", "out_refund_no", "refund_fen", "updated_at", "deadline"}),
		Where: clause.Where{Exprs: []clause.Expression{clause.Expr{SQL: "after_sales.updated_at <= excluded.updated_at"}}},
	}).Create(&a).Error
}

// GetAfterSale is one after-sale by its ID (ErrNotFound when there is none).
func (s *Store) GetAfterSale(ctx context.Context, id string) (_ AfterSale, err error) {
	defer annotate(&err, "get after-sale %s", id)
	var a AfterSale
	if err := s.conn(ctx).Where("id = ?", id).Take(&a).Error; err != nil {
		return AfterSale{}, notFound(err, "after-sale %s", id)
	}
	return a, nil
}

// ListAfterSales lists after-sales, oldest first: the open ones when open
// is set, else all; at most limit (1..200).
func (s *Store) ListAfterSales(ctx context.Context, open bool, limit int) (_ []AfterSale, err error) {
	defer annotate(&err, "list after-sales")
	if limit <= 0 || limit > 200 {
		limit = 200
	}
	q := s.conn(ctx).Order("created_at, id").Limit(limit)
	if open {
		q = q.Where("status IN ?", openAfterSaleStatuses)
	}
	var out []AfterSale
	return out, q.Find(&out).Error
}

// ListOrderAfterSales lists the after-sales of one order, oldest first.
func (s *Store) ListOrderAfterSales(ctx context.Context, orderNo string) (_ []AfterSale, err error) {
	defer annotate(&err, "list after-sales of order %s", orderNo)
	var out []AfterSale
	return out, s.conn(ctx).Where("order_no = ?", orderNo).Order("created_at, id").Find(&out).Error
}
