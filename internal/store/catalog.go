package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// UpsertUserByOpenID returns the user with this openid, creating it on first login.
func (s *Store) UpsertUserByOpenID(ctx context.Context, openID string) (_ User, err error) {
	defer annotate(&err, "upsert user")
	if strings.TrimSpace(openID) == "" {
		return User{}, invalid("empty openid")
	}
	u := User{OpenID: openID, CreatedAt: now()}
	err = s.conn(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "open_id"}},
		DoNothing: true,
	}).Create(&u).Error
	if err != nil {
		return User{}, err
	}
	var out User
	if err := s.conn(ctx).Where("open_id = ?", openID).Take(&out).Error; err != nil {
		return User{}, err
	}
	return out, nil
}

// GetUser returns a user by id, ErrNotFound if there is none.
func (s *Store) GetUser(ctx context.Context, id int64) (_ User, err error) {
	defer annotate(&err, "get user")
	var u User
	if err := s.conn(ctx).Where("id = ?", id).Take(&u).Error; err != nil {
		return User{}, notFound(err, "user %d", id)
	}
	return u, nil
}

// ListProducts returns every product ordered by id.
func (s *Store) ListProducts(ctx context.Context) (_ []Product, err error) {
	defer annotate(&err, "list products")
	var ps []Product
	if err := s.conn(ctx).Order("id").Find(&ps).Error; err != nil {
		return nil, err
	}
	return ps, nil
}

// GetProduct returns one product, ErrNotFound if there is none.
func (s *Store) GetProduct(ctx context.Context, id int64) (_ Product, err error) {
	defer annotate(&err, "get product")
	var p Product
	if err := s.conn(ctx).Where("id = ?", id).Take(&p).Error; err != nil {
		return Product{}, notFound(err, "product %d", id)
	}
	return p, nil
}

// GetProducts returns the products with these ids; ids that do not exist are
// simply absent from the map.
func (s *Store) GetProducts(ctx context.Context, ids []int64) (_ map[int64]Product, err error) {
	defer annotate(&err, "get products")
	out := make(map[int64]Product, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var ps []Product
	if err := s.conn(ctx).Where("id IN ?", ids).Find(&ps).Error; err != nil {
		return nil, err
	}
	for _, p := range ps {
		out[p.ID] = p
	}
	return out, nil
}

func validateProduct(name string, price, stock int64) error {
	switch {
	case strings.TrimSpace(name) == "":
		return invalid("product name is empty")
	case price < 0:
		return invalid("negative price %d", price)
	case stock < 0:
		return invalid("negative stock %d", stock)
	}
	return nil
}

// CreateProduct inserts a product; the database assigns the id (p.ID is ignored).
func (s *Store) CreateProduct(ctx context.Context, p Product) (_ Product, err error) {
	defer annotate(&err, "create product")
	if err := validateProduct(p.Name, p.PriceFen, p.Stock); err != nil {
		return Product{}, err
	}
	p.ID = 0
	p.CreatedAt = now()
	p.UpdatedAt = p.CreatedAt
	if err := s.conn(ctx).Create(&p).Error; err != nil {
		return Product{}, err
	}
	return p, nil
}

// UpdateProduct changes the non-nil fields of u (an admin edit: Stock is set, not
// added to). Negative prices or stock are ErrInvalidArgument; ErrNotFound if the
// product does not exist.
func (s *Store) UpdateProduct(ctx context.Context, id int64, u ProductUpdate) (_ Product, err error) {
	defer annotate(&err, "update product %d", id)
	set := map[string]any{"updated_at": now()}
	if u.Name != nil {
		if strings.TrimSpace(*u.Name) == "" {
			return Product{}, invalid("product name is empty")
		}
		set["name"] = *u.Name
	}
	if u.PriceFen != nil {
		if *u.PriceFen < 0 {
			return Product{}, invalid("negative price %d", *u.PriceFen)
		}
		set["price_fen"] = *u.PriceFen
	}
	if u.Stock != nil {
		if *u.Stock < 0 {
			return Product{}, invalid("negative stock %d", *u.Stock)
		}
		set["stock"] = *u.Stock
	}
	var out Product
	err = s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&Product{}).Where("id = ?", id).Updates(set)
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("product %d: %w", id, ErrNotFound)
		}
		return tx.Where("id = ?", id).Take(&out).Error
	})
	if err != nil {
		return Product{}, err
	}
	return out, nil
}

// seedLockPostgres keeps two processes from seeding the same schema twice.
const seedLockPostgres = `SELECT pg_advisory_xact_lock(hashtext('ordersaga.seed.' || current_schema()))`

// SeedProducts inserts ps only when the products table is empty (demo data for
// dev); otherwise it does nothing. Ids are assigned by the database, in the order
// of ps.
func (s *Store) SeedProducts(ctx context.Context, ps []Product) (err error) {
	defer annotate(&err, "seed products")
	for _, p := range ps {
		if err := validateProduct(p.Name, p.PriceFen, p.Stock); err != nil {
			return err
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		if s.dialect == DialectPostgres {
			if err := tx.Exec(seedLockPostgres).Error; err != nil {
				return err
			}
		}
		var n int64
		if err := tx.Model(&Product{}).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		ts := now()
		rows := make([]Product, len(ps))
		for i, p := range ps {
			p.ID = 0
			p.CreatedAt, p.UpdatedAt = ts, ts
			rows[i] = p
		}
		return tx.Create(&rows).Error
	})
}

// PriceItems prices a basket from the database: duplicate product ids are merged
// (in the order they first appear), each line gets the product's current name and
// price, and the total is returned. It fails with ErrUnknownProduct (wrapped with
// the id) for a missing product, with *OutOfStockError when the current stock is
// short and with ErrInvalidArgument for no items or a quantity <= 0. The stock
// check is only a check: nothing is reserved (stock is deducted on payment).
func (s *Store) PriceItems(ctx context.Context, items []ItemQty) (_ []OrderItem, _ int64, err error) {
	defer annotate(&err, "price items")
	if len(items) == 0 {
		return nil, 0, invalid("no items")
	}
	var ids []int64
	qty := make(map[int64]int64, len(items))
	for _, it := range items {
		if it.ProductID <= 0 {
			return nil, 0, fmt.Errorf("%w: %d", ErrUnknownProduct, it.ProductID)
		}
		if it.Quantity <= 0 {
			return nil, 0, invalid("quantity %d for product %d", it.Quantity, it.ProductID)
		}
		if _, seen := qty[it.ProductID]; !seen {
			ids = append(ids, it.ProductID)
		}
		if qty[it.ProductID] > math.MaxInt64-it.Quantity {
			return nil, 0, invalid("quantity too large for product %d", it.ProductID)
		}
		qty[it.ProductID] += it.Quantity
	}
	products, err := s.GetProducts(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	for _, id := range ids {
		if _, ok := products[id]; !ok {
			return nil, 0, fmt.Errorf("%w: %d", ErrUnknownProduct, id)
		}
	}
	out := make([]OrderItem, 0, len(ids))
	var total int64
	for _, id := range ids {
		p, q := products[id], qty[id]
		if p.Stock < q {
			return nil, 0, &OutOfStockError{ProductID: id, Name: p.Name, Requested: q, Available: p.Stock}
		}
		line, ok := mulFen(p.PriceFen, q)
		if !ok || total > math.MaxInt64-line {
			return nil, 0, invalid("amount overflows for product %d", id)
		}
		total += line
		out = append(out, OrderItem{ProductID: id, Name: p.Name, UnitPriceFen: p.PriceFen, Quantity: q})
	}
	return out, total, nil
}

// mulFen multiplies without overflowing int64.
func mulFen(price, qty int64) (int64, bool) {
	if price == 0 || qty == 0 {
		return 0, true
	}
	if price > math.MaxInt64/qty {
		return 0, false
	}
	return price * qty, true
}

// sortedItems returns a copy of items ordered by product id: every transaction
// that locks several product rows locks them in the same order (no deadlocks).
func sortedItems(items []OrderItem) []OrderItem {
	out := append([]OrderItem(nil), items...)
	sort.Slice(out, func(i, j int) bool { return out[i].ProductID < out[j].ProductID })
	return out
}
