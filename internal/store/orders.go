package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"ordersaga/internal/status"
)

// Default and maximum page sizes of ListOrdersByUser.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// CreateOrder inserts an order and its items in one transaction. It is idempotent
// by OrderNo: when the order already exists the stored one (with its items) is
// returned and nothing is written.
//
// Status defaults to PENDING, CreatedAt to now. PayDeadline and at least one item
// are required; TotalFen must be the sum of the items (0 means "compute it").
func (s *Store) CreateOrder(ctx context.Context, o Order) (_ Order, err error) {
	defer annotate(&err, "create order %s", o.OrderNo)
	if err := prepareOrder(&o); err != nil {
		return Order{}, err
	}
	items := slices.Clone(o.Items) // do not write ids into the caller's slice
	row := o
	row.Items = nil

	var out Order
	err = s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "order_no"}}, DoNothing: true}).
			Omit(clause.Associations).Create(&row)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 { // already there: a retry
			existing, err := getOrder(tx, o.OrderNo)
			if err != nil {
				return err
			}
			if existing.UserID != o.UserID {
				// An order number collision, not a retry: never hand out someone else's order.
				return invalid("order_no %s already belongs to another user", o.OrderNo)
			}
			out = existing
			return nil
		}
		for i := range items {
			items[i].ID = 0
			items[i].OrderNo = o.OrderNo
		}
		if err := tx.Create(&items).Error; err != nil {
			return err
		}
		var err error
		out, err = getOrder(tx, o.OrderNo)
		return err
	})
	if err != nil {
		return Order{}, err
	}
	return out, nil
}

func prepareOrder(o *Order) error {
	if strings.TrimSpace(o.OrderNo) == "" {
		return invalid("empty order_no")
	}
	if o.UserID <= 0 {
		return invalid("order %s: user id %d", o.OrderNo, o.UserID)
	}
	if o.Status == "" {
		o.Status = status.Pending
	}
	if !o.Status.Stored() {
		return invalid("order %s: status %q", o.OrderNo, o.Status)
	}
	if o.PayDeadline.IsZero() {
		return invalid("order %s: no pay deadline", o.OrderNo)
	}
	a := o.ShipTo
	for _, f := range []string{o.Address, a.Name, a.Phone, a.Province, a.City, a.District, a.Detail, a.PostalCode} {
		if strings.ContainsRune(f, 0) {
			// PostgreSQL refuses NUL in text; say so rather than fail the insert.
			return invalid("order %s: the address contains a NUL character", o.OrderNo)
		}
	}
	if len(o.Items) == 0 {
		return invalid("order %s: no items", o.OrderNo)
	}
	seen := make(map[int64]bool, len(o.Items))
	var sum int64
	for _, it := range o.Items {
		if it.ProductID <= 0 || it.Quantity <= 0 || it.UnitPriceFen < 0 {
			return invalid("order %s: item product %d quantity %d price %d", o.OrderNo, it.ProductID, it.Quantity, it.UnitPriceFen)
		}
		if seen[it.ProductID] {
			return invalid("order %s: product %d listed twice", o.OrderNo, it.ProductID)
		}
		seen[it.ProductID] = true
		line, ok := mulFen(it.UnitPriceFen, it.Quantity)
		if !ok || sum > math.MaxInt64-line {
			return invalid("order %s: amount overflows", o.OrderNo)
		}
		sum += line
	}
	if o.TotalFen == 0 {
		o.TotalFen = sum
	}
	if o.TotalFen != sum {
		return invalid("order %s: total %d fen is not the sum of its items (%d fen)", o.OrderNo, o.TotalFen, sum)
	}
	if o.CreatedAt.IsZero() {
		o.CreatedAt = now()
	}
	o.CreatedAt = dbTime(o.CreatedAt)
	o.UpdatedAt = o.CreatedAt
	o.PayDeadline = dbTime(o.PayDeadline)
	o.PaidAt = dbTimePtr(o.PaidAt)
	o.ClosedAt = dbTimePtr(o.ClosedAt)
	o.ShippedAt = dbTimePtr(o.ShippedAt)
	o.CompletedAt = dbTimePtr(o.CompletedAt)
	return nil
}

func dbTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := dbTime(*t)
	return &v
}

func preloadItems(db *gorm.DB) *gorm.DB {
	return db.Preload("Items", func(db *gorm.DB) *gorm.DB { return db.Order("id") })
}

func getOrder(db *gorm.DB, orderNo string) (Order, error) {
	var o Order
	if err := preloadItems(db).Where("order_no = ?", orderNo).Take(&o).Error; err != nil {
		return Order{}, notFound(err, "order %s", orderNo)
	}
	return o, nil
}

// GetOrder returns an order with its items, ErrNotFound if there is none.
func (s *Store) GetOrder(ctx context.Context, orderNo string) (_ Order, err error) {
	defer annotate(&err, "get order")
	return getOrder(s.conn(ctx), orderNo)
}

// GetOrderForUser is GetOrder for the order's owner: an order of someone else is
// ErrNotFound too, so that a user cannot learn which order numbers exist.
func (s *Store) GetOrderForUser(ctx context.Context, orderNo string, userID int64) (_ Order, err error) {
	defer annotate(&err, "get order")
	var o Order
	err = preloadItems(s.conn(ctx)).Where("order_no = ? AND user_id = ?", orderNo, userID).Take(&o).Error
	if err != nil {
		return Order{}, notFound(err, "order %s", orderNo)
	}
	return o, nil
}

// Cursor is a position in a user's order list (newest first): the next page
// starts after the order with this (CreatedAt, OrderNo).
type Cursor struct {
	CreatedAt time.Time
	OrderNo   string
}

// Encode renders the cursor as an opaque URL-safe token for an API.
func (c Cursor) Encode() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + ":" + c.OrderNo
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// DecodeCursor parses a token made by Cursor.Encode; a malformed token is
// ErrInvalidArgument.
func DecodeCursor(token string) (*Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, invalid("cursor: %v", err)
	}
	micros, orderNo, ok := strings.Cut(string(raw), ":")
	if !ok || orderNo == "" {
		return nil, invalid("cursor: malformed")
	}
	us, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return nil, invalid("cursor: %v", err)
	}
	return &Cursor{CreatedAt: time.UnixMicro(us).UTC(), OrderNo: orderNo}, nil
}

// ListOrdersByUser returns a page of the user's orders, newest first, items
// included. limit <= 0 means DefaultPageSize; it is capped at MaxPageSize. Pass the
// returned cursor as before to get the next page; it is nil on the last page.
func (s *Store) ListOrdersByUser(ctx context.Context, userID int64, limit int, before *Cursor) (_ []Order, _ *Cursor, err error) {
	defer annotate(&err, "list orders of user %d", userID)
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	q := preloadItems(s.conn(ctx)).Where("user_id = ?", userID)
	if before != nil {
		t := dbTime(before.CreatedAt)
		q = q.Where("(created_at < ? OR (created_at = ? AND order_no < ?))", t, t, before.OrderNo)
	}
	var orders []Order
	err = q.Order("created_at DESC").Order("order_no DESC").Limit(limit + 1).Find(&orders).Error
	if err != nil {
		return nil, nil, err
	}
	if len(orders) <= limit {
		return orders, nil, nil
	}
	orders = orders[:limit]
	last := orders[limit-1]
	return orders, &Cursor{CreatedAt: last.CreatedAt, OrderNo: last.OrderNo}, nil
}

// TransitionOrder moves an order from one of the statuses in from to the status
// to, setting the fields in set (set.AddFlag included), with one conditional UPDATE
// (... WHERE order_no = ? AND status IN (from)). It returns changed=true and the
// updated order when this call made the change.
//
// When no row matched, the order is re-read: if it is already in status to, this
// was a retry and the result is (false, order, nil) (set is not applied again);
// if it does not exist, ErrNotFound; otherwise (false, order, *StatusConflictError)
// carrying the current status. A from list containing to is treated as if to were
// absent (a transition to the same status never "changes" anything).
func (s *Store) TransitionOrder(ctx context.Context, orderNo string, from []status.Order, to status.Order, set OrderUpdate) (_ bool, _ Order, err error) {
	defer annotate(&err, "transition order %s to %s", orderNo, to)
	if !to.Stored() {
		return false, Order{}, invalid("target status %q", to)
	}
	var fromStr []string
	for _, f := range from {
		if !f.Stored() {
			return false, Order{}, invalid("source status %q", f)
		}
		if f != to {
			fromStr = append(fromStr, string(f))
		}
	}
	if len(from) == 0 {
		return false, Order{}, invalid("no source status")
	}
	ts := now()
	upd := map[string]any{"status": string(to), "updated_at": ts}
	if set.PrepayID != nil {
		upd["prepay_id"] = *set.PrepayID
	}
	if set.TransactionID != nil {
		upd["transaction_id"] = *set.TransactionID
	}
	if set.PaidAt != nil {
		upd["paid_at"] = dbTime(*set.PaidAt)
	}
	if set.ClosedAt != nil {
		upd["closed_at"] = dbTime(*set.ClosedAt)
	}
	if set.ShippedAt != nil {
		upd["shipped_at"] = dbTime(*set.ShippedAt)
	}
	if set.CompletedAt != nil {
		upd["completed_at"] = dbTime(*set.CompletedAt)
	}
	if set.TrackingNo != nil {
		upd["tracking_no"] = *set.TrackingNo
	}
	if set.Shipment != nil {
		b, err := json.Marshal(set.Shipment)
		if err != nil {
			return false, Order{}, invalid("shipment: %v", err)
		}
		upd["shipment"] = string(b)
	}
	if set.Flag != nil {
		if set.AddFlag != "" {
			return false, Order{}, invalid("both Flag and AddFlag set")
		}
		upd["flag"] = *set.Flag
	}
	if set.AddFlag != "" {
		reason, err := flagReason(set.AddFlag)
		if err != nil {
			return false, Order{}, err
		}
		upd["flag"] = s.addFlagExpr(reason)
	}

	var (
		changed bool
		out     Order
	)
	err = s.tx(ctx, func(tx *gorm.DB) error {
		if len(fromStr) > 0 {
			res := tx.Model(&Order{}).Where("order_no = ? AND status IN ?", orderNo, fromStr).Updates(upd)
			if res.Error != nil {
				return res.Error
			}
			changed = res.RowsAffected > 0
		}
		o, err := getOrder(tx, orderNo)
		if err != nil {
			return err
		}
		out = o
		if changed || o.Status == to {
			return nil
		}
		return &StatusConflictError{OrderNo: orderNo, Current: o.Status, Want: slices.Clone(from)}
	})
	if err != nil {
		return false, out, err
	}
	return changed, out, nil
}

// SetPrepayID records the JSAPI prepay_id of a PENDING order. Setting the same
// value again is a no-op whatever the status (a retry: nothing is written, not
// even updated_at); a different value on an order that is no longer PENDING is
// a *StatusConflictError.
func (s *Store) SetPrepayID(ctx context.Context, orderNo, prepayID string) (err error) {
	defer annotate(&err, "set prepay_id of order %s", orderNo)
	if prepayID == "" {
		return invalid("empty prepay_id")
	}
	res := s.conn(ctx).Model(&Order{}).
		Where("order_no = ? AND status = ? AND prepay_id <> ?", orderNo, string(status.Pending), prepayID).
		Updates(map[string]any{"prepay_id": prepayID, "updated_at": now()})
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected > 0 {
		return nil
	}
	o, err := getOrder(s.conn(ctx), orderNo)
	if err != nil {
		return err
	}
	if o.PrepayID == prepayID {
		return nil
	}
	return &StatusConflictError{OrderNo: orderNo, Current: o.Status, Want: []status.Order{status.Pending}}
}

// FlagOrder marks an order for a person to look at, with a reason such as
// "PAYMENT_MISMATCH" (workflows.Flag*). Reasons accumulate, comma separated; adding a reason that
// is already there is a no-op. ErrNotFound if the order does not exist.
func (s *Store) FlagOrder(ctx context.Context, orderNo, reason string) (err error) {
	defer annotate(&err, "flag order %s", orderNo)
	reason, err = flagReason(reason)
	if err != nil {
		return err
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		var o Order
		err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
			Select("order_no", "flag").Where("order_no = ?", orderNo).Take(&o).Error
		if err != nil {
			return notFound(err, "order %s", orderNo)
		}
		if slices.Contains(strings.Split(o.Flag, ","), reason) {
			return nil
		}
		flag := reason
		if o.Flag != "" {
			flag = o.Flag + "," + reason
		}
		return tx.Model(&Order{}).Where("order_no = ?", orderNo).
			Updates(map[string]any{"flag": flag, "updated_at": now()}).Error
	})
}

// ListFlaggedOrders returns the orders with a non-empty Flag, most recently
// updated first (for an admin page), at most limit (capped at MaxPageSize).
func (s *Store) ListFlaggedOrders(ctx context.Context, limit int) (_ []Order, err error) {
	defer annotate(&err, "list flagged orders")
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	var orders []Order
	err = preloadItems(s.conn(ctx)).Where("flag <> ''").
		Order("updated_at DESC").Order("order_no DESC").Limit(limit).Find(&orders).Error
	if err != nil {
		return nil, err
	}
	return orders, nil
}

// flagReason validates one flag reason: not empty, no comma (reasons are
// stored comma separated).
func flagReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" || strings.Contains(reason, ",") {
		return "", invalid("flag reason %q", reason)
	}
	return reason, nil
}

// addFlagExpr is the SQL value of orders.flag with reason added, unless it is
// already one of the comma-separated reasons (the same rule as FlagOrder).
func (s *Store) addFlagExpr(reason string) clause.Expr {
	pos := "instr(',' || flag || ',', ?) > 0"
	if s.dialect == DialectPostgres {
		pos = "strpos(',' || flag || ',', ?) > 0"
	}
	return gorm.Expr("CASE WHEN flag = '' THEN ? WHEN "+pos+" THEN flag ELSE flag || ',' || ? END",
		reason, ","+reason+",", reason)
}
