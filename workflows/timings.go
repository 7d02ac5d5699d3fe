package workflows

import "time"

// Timing of the order process. A duration can be tuned without
// workflow.GetVersion (replay does not compare a timer's length); a count
// (userPayingRounds, closeAttempts) decides how many steps run, so changing
// one is a change of logic and needs GetVersion.
const (
	// SyncInterval: the sync update asks WeChat at most this often per order,
	// however fast the mini-program polls.
	SyncInterval = 3 * time.Second
	// prepayReuse: a prepay_id lives 2 hours at WeChat; reuse it well within that.
	prepayReuse = 110 * time.Minute
	// userPayingGrace: how long a payer entering the password is given, at
	// most userPayingRounds times, before the order is closed anyway.
	userPayingGrace  = 30 * time.Second
	userPayingRounds = 4
	// closeAttempts: close-and-query rounds at WeChat before the order is
	// closed here all the same and flagged (CLOSE_UNCONFIRMED): a payment
	// that lands later is returned by a StrayPaymentWorkflow.
	closeAttempts    = 8
	closeRetryFirst  = 10 * time.Second
	closeRetryMax    = 5 * time.Minute
	refundPollFirst  = 10 * time.Second
	refundPollMax    = 30 * time.Minute
	refundRequestFor = 24 * time.Hour
	// A refund still PROCESSING is asked about less often as it ages
	// (refundPollCap, since ChangeHistoryBudget): every refundPollMax until
	// refundPollSlowAfter, every refundPollSlow until refundPollSlowestAfter,
	// then every refundPollSlowest — about 4 questions a day, so a year of
	// waiting is a few continued runs, not tens of thousands of events. The
	// notify, when it comes, still ends the wait at once.
	refundPollSlowAfter    = 3 * 24 * time.Hour
	refundPollSlow         = 2 * time.Hour
	refundPollSlowestAfter = 14 * 24 * time.Hour
	refundPollSlowest      = 6 * time.Hour
	// refundStallAfter: a refund still PROCESSING at WeChat this long after
	// it was accepted flags the order REFUND_STALLED (the waiting goes on).
	refundStallAfter = 3 * 24 * time.Hour

	// Shipping management. One upload round retries WeChat's busy and
	// not-yet-visible answers for shippingUploadRound; a failed round is
	// tried again after shippingUploadRetryFirst, doubling to
	// shippingUploadRetryMax, and flagged SHIPPING_UPLOAD_FAILED once the
	// shipment is shippingUploadFlagAfter old (the rounds go on).
	shippingUploadRound      = 10 * time.Minute
	shippingUploadRetryFirst = time.Minute
	shippingUploadRetryMax   = time.Hour
	shippingUploadFlagAfter  = 24 * time.Hour
	// shippingAskFor bounds one question to WeChat (get_order); between
	// questions the wait doubles from a seventh of ORDER_AUTO_CONFIRM to
	// shippingAskMax (WeChat confirms by itself ~10 days after shipping).
	shippingAskFor = 10 * time.Minute
	shippingAskMax = 2 * 24 * time.Hour
)

// Part refunds (ChangePartialRefunds). One request round retries WeChat's
// busy answers (FREQUENCY_LIMITED, NOT_ENOUGH, 5xx) for refundAskRound,
// with the same out_refund_no; a failed round is tried again after
// refundAskRetryFirst, doubling to refundAskRetryMax, until
// refundRequestFor has passed since the first (then the part FAILED, for
// a person) — the main loop is never held for longer than a round. A
// question about a refund is bounded the same.
const (
	refundAskRound      = 10 * time.Minute
	refundAskRetryFirst = time.Minute
	refundAskRetryMax   = time.Hour
)
