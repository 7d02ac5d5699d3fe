package store

import (
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"ordersaga/internal/status"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the row does not exist (or, for GetOrderForUser, belongs to someone else).
	ErrNotFound = errors.New("not found")
	// ErrUnknownProduct: a product id that is not in the products table; wrapped with the id.
	ErrUnknownProduct = errors.New("unknown product")
	// ErrOutOfStock matches every *OutOfStockError.
	ErrOutOfStock = errors.New("out of stock")
	// ErrStatusConflict matches every *StatusConflictError.
	ErrStatusConflict = errors.New("order status conflict")
	// ErrInvalidArgument: the caller passed something that can never succeed
	// (empty ids, non-positive quantities, negative amounts...). Not worth retrying.
	ErrInvalidArgument = errors.New("invalid argument")
)

// OutOfStockError says a product has fewer units than asked for.
type OutOfStockError struct {
	ProductID int64
	// Name is the product's name as the shopper saw it ("" when unknown).
	Name      string
	Requested int64
	Available int64
}

func (e *OutOfStockError) Error() string {
	name := ""
	if e.Name != "" {
		name = fmt.Sprintf(" (%s)", e.Name)
	}
	return fmt.Sprintf("out of stock: product %d%s: requested %d, available %d",
		e.ProductID, name, e.Requested, e.Available)
}

// Is makes errors.Is(err, ErrOutOfStock) true.
func (e *OutOfStockError) Is(target error) bool { return target == ErrOutOfStock }

// StatusConflictError says an order is not in a status the operation accepts.
type StatusConflictError struct {
	OrderNo string
	Current status.Order
	Want    []status.Order
}

func (e *StatusConflictError) Error() string {
	want := make([]string, len(e.Want))
	for i, w := range e.Want {
		want[i] = string(w)
	}
	return fmt.Sprintf("order %s is %s, want %s", e.OrderNo, e.Current, strings.Join(want, "|"))
}

// Is makes errors.Is(err, ErrStatusConflict) true.
func (e *StatusConflictError) Is(target error) bool { return target == ErrStatusConflict }

// Error messages: the sentinels and helpers below carry no package prefix; every
// exported function adds exactly one "store: <operation>: " with wrap.

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// notFound turns gorm's ErrRecordNotFound into ErrNotFound naming the thing.
func notFound(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// wrap prefixes err with "store: op: " once (errors already prefixed pass
// through), keeping the wrapped errors matchable with errors.Is/As.
func wrap(err error, op string) error {
	if err == nil || strings.HasPrefix(err.Error(), "store: ") {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("store: %s: %w", op, ErrNotFound)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// annotate is deferred by exported functions with a named error result: it
// prefixes the returned error once with "store: <op>: ".
func annotate(err *error, format string, args ...any) {
	if *err != nil {
		*err = wrap(*err, fmt.Sprintf(format, args...))
	}
}
