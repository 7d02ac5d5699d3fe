// Package workflows holds the order's business process as Temporal workflows.
// It is deterministic and does no I/O: everything that touches the database or
// WeChat Pay is an activity, called by name, implemented in package activities.
// The API imports this package for the names and types it needs to start,
// signal, update and query orders.
package workflows

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
)

// Workflow and message names. They are part of every recorded history: never
// rename one while orders that use it may be running.
const (
	OrderWorkflowName = "OrderWorkflow"

	// UpdateCreate is sent with update-with-start: it returns the created
	// order, or the reason it was refused, in the same round trip as the start.
	UpdateCreate = "create"

	// QueryState returns the workflow's view of the order (OrderView).
	QueryState = "state"
)

// Activity names, registered by package worker on the methods of
// activities.Activities.
const (
	ActivityCreateOrder = "CreateOrder"
	ActivityCloseOrder  = "CloseOrder"
)

// Error types: the Type of the ApplicationErrors activities and update
// handlers return for business failures. Stable: the API maps them to its
// error codes.
const (
	ErrTypeOutOfStock     = "OUT_OF_STOCK"
	ErrTypeUnknownProduct = "UNKNOWN_PRODUCT"
	ErrTypeInvalidOrder   = "INVALID_ARGUMENT"
	ErrTypeStatusConflict = "STATUS_CONFLICT"
)

// WorkflowID is the ID of an order's workflow: one order, one workflow, found
// in the Web UI by its number.
func WorkflowID(orderNo string) string { return "order-" + orderNo }

// Search attributes every order workflow keeps current, so that the Web UI and
// operators can filter: OrderStatus="PAID", OrderUserID="42", …
var (
	AttrOrderNo        = temporal.NewSearchAttributeKeyKeyword("OrderNo")
	AttrOrderStatus    = temporal.NewSearchAttributeKeyKeyword("OrderStatus")
	AttrOrderUserID    = temporal.NewSearchAttributeKeyKeyword("OrderUserID")
	AttrOrderAmountFen = temporal.NewSearchAttributeKeyInt64("OrderAmountFen")
)

// SearchAttributes is what a Temporal namespace must have registered for the
// order workflows to run (the embedded server registers them; a cluster needs
// `temporal operator search-attribute create`).
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrOrderNo.GetName():        enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderStatus.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderUserID.GetName():    enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderAmountFen.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	}
}
