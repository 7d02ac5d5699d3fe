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
	OrderWorkflowName        = "OrderWorkflow"
	StrayPaymentWorkflowName = "StrayPaymentWorkflow"

	// UpdateCreate is sent with update-with-start: it returns the created
	// order, or the reason it was refused, in the same round trip as the start.
	UpdateCreate = "create"
	// UpdatePay returns the wx.requestPayment parameters (PayParams) of a
	// PENDING order, creating the JSAPI prepay once and reusing it after.
	UpdatePay = "pay"
	// UpdateCancel closes a PENDING order (at WeChat first) and returns the
	// order once it is CLOSED — or PAID, when WeChat says it was paid.
	UpdateCancel = "cancel"
	// UpdateSync asks WeChat now (at most once per SyncInterval) whether a
	// PENDING order was paid and applies the answer (SyncResult).
	UpdateSync = "sync"
	// UpdateRequestRefund refunds a paid order (RefundRequest): in full, or
	// — since ChangePartialRefunds — some of its items; the user before
	// shipping, an admin before or after.
	UpdateRequestRefund = "request_refund"
	// UpdateShip marks a PAID order SHIPPED (admin; ShipRequest).
	UpdateShip = "ship"
	// UpdateConfirm marks a SHIPPED order COMPLETED (the user got the goods).
	UpdateConfirm = "confirm"
	// UpdateRequestAfterSale opens an after-sale of a SHIPPED or COMPLETED
	// order (AfterSaleRequest; the buyer); UpdateAfterSaleAction takes its
	// next step (AfterSaleAction: approve, reject, receive by the shop,
	// return by the buyer). Both answer the order once the step's row is
	// written.
	UpdateRequestAfterSale = "request_after_sale"
	UpdateAfterSaleAction  = "after_sale_action"

	// SignalPayment carries a payment WeChat reported (PaymentNotice), from
	// the notify endpoint.
	SignalPayment = "payment"
	// SignalRefund carries a refund result WeChat reported (RefundNotice).
	SignalRefund = "refund"
	// SignalWechatEvent carries a shipping-management event WeChat pushed
	// about the order's payment (WechatEvent), from /v1/wechat/events.
	SignalWechatEvent = "wechat_event"

	// QueryState returns the workflow's view of the order (OrderView), or of
	// the stray payment (StrayPaymentView).
	QueryState = "state"
	// QueryPayParams returns the wx.requestPayment parameters (PayParams) of
	// the prepay a PENDING order holds, for a pay the validator answered
	// ErrTypeAlreadyRequested; it fails when the order holds none to use.
	QueryPayParams = "pay_params"
)

// Activity names, registered by package worker on the methods of
// activities.Activities.
const (
	ActivityCreateOrder         = "CreateOrder"
	ActivityCheckStock          = "CheckStock"
	ActivityRequestPayment      = "RequestPayment"
	ActivityQueryPayment        = "QueryPayment"
	ActivityClosePayment        = "ClosePayment"
	ActivityMarkPaid            = "MarkPaid"
	ActivityDeductStock         = "DeductStock"
	ActivityCloseOrder          = "CloseOrder"
	ActivitySetOrderStatus      = "SetOrderStatus"
	ActivityFlagOrder           = "FlagOrder"
	ActivityRequestRefund       = "RequestRefund"
	ActivityQueryRefund         = "QueryRefund"
	ActivitySettleRefund        = "SettleRefund"
	ActivitySaveAfterSale       = "SaveAfterSale"
	ActivityExamineStrayPayment = "ExamineStrayPayment"
	// WeChat's order shipping management (mini-program server API).
	ActivityUploadShipping      = "UploadShippingInfo"
	ActivityQueryWechatShipping = "QueryWechatShipping"
	ActivityRemindReceipt       = "RemindReceiptConfirmation"
)

// Error types: the Type of the ApplicationErrors that activities, update
// validators and update handlers return for business failures. Stable: the
// API maps them to its error codes.
const (
	ErrTypeOutOfStock     = "OUT_OF_STOCK"
	ErrTypeUnknownProduct = "UNKNOWN_PRODUCT"
	ErrTypeInvalidOrder   = "INVALID_ARGUMENT"
	ErrTypeStatusConflict = "STATUS_CONFLICT"

	// Refusals of user and admin actions (update validators).
	ErrTypeNotPayable     = "ORDER_NOT_PAYABLE"
	ErrTypeNotCancellable = "ORDER_NOT_CANCELLABLE"
	ErrTypeNotRefundable  = "ORDER_NOT_REFUNDABLE"
	ErrTypeNotShippable   = "ORDER_NOT_SHIPPABLE"
	ErrTypeNotConfirmable = "ORDER_NOT_CONFIRMABLE"
	// ErrTypeSyncNotNeeded: the sync validator's refusal when there is
	// nothing to ask WeChat (not PENDING, no prepay yet, being closed) or it
	// was asked less than SyncInterval ago. Not an error for the caller: the
	// order row says where it stands. Refused before history, so a
	// mini-program polling fast writes nothing.
	ErrTypeSyncNotNeeded = "SYNC_NOT_NEEDED"
	// ErrTypeAlreadyRequested: a validator's refusal of a request the order
	// already holds or is acting on — a pay while it holds a fresh prepay, a
	// cancel while it closes, a refund while it refunds, a ship once shipped.
	// Not an error for the caller: the answer is the order as it is (for
	// pay, QueryPayParams).
	// Refused before history, so however often a client repeats itself it
	// writes nothing, and cannot use up Temporal's limit on the updates of
	// one workflow (history.maxTotalUpdates) that the order's later steps
	// (ship, refund) need.
	ErrTypeAlreadyRequested = "ALREADY_REQUESTED"
	// ErrTypeRefundExceedsOrder: a refund asks for goods the order does not
	// have, or more of them than were bought or are left to refund (a
	// refund queued, asked or failed keeps its quantity: nothing is
	// refunded twice).
	ErrTypeRefundExceedsOrder = "REFUND_EXCEEDS_ORDER"
	// ErrTypeIdempotencyKeyReused: a refund request under an
	// Idempotency-Key that already made a refund of other goods.
	ErrTypeIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"
	// After-sales: another one of the order is under way; the order is
	// not shipped or completed, or its window passed (or it was paid
	// before after-sales); the action is not the after-sale's next step
	// (approve of one approved, a return before approval, …).
	ErrTypeAfterSaleInProgress = "AFTER_SALE_IN_PROGRESS"
	ErrTypeAfterSaleNotAllowed = "AFTER_SALE_NOT_ALLOWED"
	ErrTypeAfterSaleWrongStep  = "AFTER_SALE_WRONG_STEP"

	// WeChat Pay failures as the workflow sees them.
	// ErrTypeWechatRefused: WeChat answered a permanent error (4xx other than
	// rate limiting); retrying the same request cannot help.
	ErrTypeWechatRefused = "WECHAT_REFUSED"
	// ErrTypeWechatUnavailable: WeChat did not answer usefully within the
	// time a waiting user can be given (pay update); try again later.
	ErrTypeWechatUnavailable = "WECHAT_UNAVAILABLE"
)

// Metrics the workflows emit (workflow.GetMetricsHandler: the worker's
// Prometheus /metrics, counters suffixed _total). Operators alert on
// flagged orders, failed stray refunds and histories past the warning size.
const (
	// MetricOrderTransitions counts status changes, labelled from and to.
	MetricOrderTransitions = "ordersaga_order_transitions"
	// MetricOrdersFlagged counts orders flagged for a person, labelled flag
	// (PAYMENT_MISMATCH, REFUND_FAILED, CLOSE_UNCONFIRMED, UNEXPECTED_REFUND,
	// REFUND_STALLED, SHIPPING_UPLOAD_FAILED, SHIPPING_REMINDED).
	MetricOrdersFlagged = "ordersaga_orders_flagged"
	// MetricStrayPayments counts stray payments by outcome (REFUNDED,
	// REFUND_FAILED, KEPT, IGNORED).
	MetricStrayPayments = "ordersaga_stray_payments"
	// MetricContinuedAsNew counts runs that handed their state to a new run
	// of the same workflow (keepHistoryBudget), labelled workflow
	// (OrderWorkflow, StrayPaymentWorkflow) and reason (suggested: Temporal
	// suggested it; events, bytes: the history reached the budget).
	MetricContinuedAsNew = "ordersaga_workflow_continued_as_new"
	// MetricHistoryLarge counts runs that reach a check of their history
	// budget past the warning size (historyWarnEvents, historyWarnBytes),
	// labelled workflow: operators alert on it before Temporal's limit
	// terminates the run (the worker declares it at 0: app.DeclareWorkerMetrics).
	MetricHistoryLarge = "ordersaga_workflow_history_large"
)

// WorkflowID is the ID of an order's workflow: one order, one workflow, found
// in the Web UI by its number.
func WorkflowID(orderNo string) string { return "order-" + orderNo }

// StrayPaymentWorkflowID is the ID of the workflow that returns a payment no
// order keeps (the order closed, or the payment did not match it). One per
// WeChat transaction, so repeated notifies start it once.
func StrayPaymentWorkflowID(transactionID string) string { return "stray-payment-" + transactionID }

// Search attributes every order workflow keeps current, so that the Web UI and
// operators can filter: OrderStatus="PAID", OrderUserID="42", …
var (
	AttrOrderNo        = temporal.NewSearchAttributeKeyKeyword("OrderNo")
	AttrOrderStatus    = temporal.NewSearchAttributeKeyKeyword("OrderStatus")
	AttrOrderUserID    = temporal.NewSearchAttributeKeyKeyword("OrderUserID")
	AttrOrderAmountFen = temporal.NewSearchAttributeKeyInt64("OrderAmountFen")
	// AttrOrderRefundedFen is what WeChat returned of the order's payment
	// (orders since ChangePartialRefunds).
	AttrOrderRefundedFen = temporal.NewSearchAttributeKeyInt64("OrderRefundedFen")
)

// SearchAttributes is what a Temporal namespace must have registered for the
// order workflows to run (the embedded server registers them; a cluster needs
// `temporal operator search-attribute create`).
func SearchAttributes() map[string]enumspb.IndexedValueType {
	return map[string]enumspb.IndexedValueType{
		AttrOrderNo.GetName():          enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderStatus.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderUserID.GetName():      enumspb.INDEXED_VALUE_TYPE_KEYWORD,
		AttrOrderAmountFen.GetName():   enumspb.INDEXED_VALUE_TYPE_INT,
		AttrOrderRefundedFen.GetName(): enumspb.INDEXED_VALUE_TYPE_INT,
	}
}
