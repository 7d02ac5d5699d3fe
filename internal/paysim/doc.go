// Package paysim is an offline stand-in for WeChat Pay API v3 (JSAPI payments
// and domestic refunds) and for the mini-program jscode2session, faithful at
// the protocol level so that the official Go SDK runs against it unmodified.
// It is also runnable alone: `ordersaga paysim` (RunCommand). docs/PAYSIM.md
// has the same reference with curl examples.
//
// # Protocol
//
// Every /v3 request must carry the merchant's Authorization header
// (WECHATPAY2-SHA256-RSA2048, SHA256withRSA over
// "METHOD\nURI\nTIMESTAMP\nNONCE\nBODY\n"): wrong scheme, mchid, certificate
// serial, a timestamp more than 5 minutes away, or a signature that does not
// verify with the merchant public key is answered 401 SIGN_ERROR. Every answer
// (2xx including 204, and errors) is signed with the simulator's key in
// public-key mode: Wechatpay-Timestamp, -Nonce, -Signature, and -Serial = the
// public key id. Timestamps come from Options.Clock.
//
// # WeChat Pay endpoints
//
//	POST /v3/pay/transactions/jsapi                          prepay → {"prepay_id"}
//	GET  /v3/pay/transactions/out-trade-no/{no}?mchid=       query
//	GET  /v3/pay/transactions/id/{transaction_id}?mchid=     query (paid orders)
//	POST /v3/pay/transactions/out-trade-no/{no}/close        close → 204
//	POST /v3/refund/domestic/refunds                         refund → PROCESSING
//	GET  /v3/refund/domestic/refunds/{out_refund_no}         refund query
//	GET  /sns/jscode2session?appid&secret&js_code&grant_type login
//
// Text fields are limited in UTF-8 bytes, as WeChat counts them (description
// 127, attach 128, refund reason 80; a Chinese character is 3 bytes), and
// out_trade_no (6–32) and out_refund_no (1–64) take [0-9A-Za-z_*-] only: a
// request over a limit is 400 PARAM_ERROR naming the field.
//
// Behaviour: a transaction is NOTPAY after prepay; the payer (control API)
// makes it SUCCESS, PAYERROR or USERPAYING; close makes an unpaid one CLOSED;
// once time_expire passes (on Options.Clock) an unpaid one is CLOSED and can
// no longer be paid. A second prepay for the same out_trade_no with the same
// appid, amount, openid and description answers the same prepay_id; with other
// parameters 403 OUT_TRADE_NO_USED; for a closed order 400 ORDER_CLOSED; for a
// paid one 403 ORDERPAID. Query of an unknown order: 404 ORDER_NOT_EXIST.
// Close of an unknown or already closed order: 204. Close of a paid order:
// Options.CloseOnPaid / POST /sim/settings decides: "refuse" answers 400
// ORDERPAID, "ok204" answers 204; both leave it paid.
//
// A refund needs a paid order (else 400 INVALID_REQUEST), amount.total equal
// to the order total (else 400 PARAM_ERROR), and refund ≤ what is left
// (total minus refunds not CLOSED; else 400 INVALID_REQUEST). It is accepted
// PROCESSING, the order's trade_state becomes REFUND, and after
// Options.RefundDelay it settles SUCCESS (or ABNORMAL / CLOSED when told by
// the refund faults or /sim/refunds/{no}/settle). Repeating a refund with
// the same out_refund_no and amounts answers the same refund; with other
// amounts 400 INVALID_REQUEST. Unknown order: 404 RESOURCE_NOT_EXISTS.
//
// # Notifications
//
// A payment (TRANSACTION.SUCCESS, to the prepay's notify_url) and a settled
// refund (REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED, to the refund's
// notify_url, else the prepay's) are POSTed as WeChat does: the resource is
// encrypted with AEAD_AES_256_GCM under the APIv3 key, the request is signed
// (public-key mode). A non-2xx answer or no answer within Options.NotifyTimeout
// (5 s) is retried after 15s 15s 30s 3m 10m 20m 30m 30m 30m 60m 3h 3h 3h 6h 6h
// times Options.NotifyScale, then never again. Attempts are recorded
// (time from Options.Clock, status, error).
//
// # Control API (plain JSON, unsigned)
//
//	GET    /sim/health
//	GET    /sim/transactions                        all transactions
//	GET    /sim/transactions/{no}                   trade_state, refunds, notifies and their attempts, events
//	POST   /sim/transactions/{no}/pay               the payer pays in full; the notify follows.
//	                                                Body {"when":"on_close"} instead arms "paid a moment before
//	                                                close": the next close finds it paid (success_time 1 s earlier)
//	POST   /sim/transactions/{no}/fail              payment failed at the bank: PAYERROR (may still pay later)
//	POST   /sim/transactions/{no}/userpaying        payer is entering the password: USERPAYING
//	POST   /sim/transactions/{no}/abandon           payer closed the payment sheet (stays NOTPAY; recorded)
//	GET    /sim/refunds/{out_refund_no}
//	POST   /sim/refunds/{out_refund_no}/settle      {"status":"SUCCESS"|"ABNORMAL"|"CLOSED"} settle now
//	GET    /sim/faults | POST /sim/faults | DELETE /sim/faults
//	GET    /sim/settings | POST /sim/settings       {"close_on_paid":"refuse"|"ok204","refund_delay_ms":N,"notify_scale":F}
//	POST   /sim/signtest                            {"url":...} send a WECHATPAY/SIGNTEST/ probe; GET lists results
//
// Control errors: {"error":{"code":"NOT_FOUND"|"CONFLICT"|"INVALID","message":...}}
// with 404 / 409 / 400 (e.g. paying a closed order is 409 CONFLICT).
//
// # Faults
//
// POST /sim/faults merges (a present section replaces that section; an
// endpoint set to null is cleared):
//
//	{
//	  "notify": {
//	    "drop": 1,              // the next N notifications are never sent
//	    "duplicate": 1,         // the next N are sent again right after their 2xx
//	    "delay_ms": 500,        // every first attempt waits this long
//	    "reorder": true,        // hold each notification until the next exists, send newer first
//	    "reorder_hold_ms": 3000,// release a held one after this anyway
//	    "tamper": "stale_timestamp", "tamper_count": 1
//	                            // spoil the next N attempts: flip_signature | stale_timestamp |
//	                            // wrong_serial | wrong_key | corrupt_ciphertext (retries are genuine)
//	  },
//	  "endpoints": {            // prepay | query | close | refund | refund_query | jscode2session
//	    "close": {"status": 500, "count": 2},                  // answer 500 SYSTEM_ERROR twice
//	    "refund": {"status": 500, "after": true, "count": 1},  // do it, then answer 500 (answer lost)
//	    "query": {"delay_ms": 3000, "count": 1},               // slow answer
//	    "prepay": {"bad_signature": true, "count": 1},         // answer signed wrongly
//	    "refund_query": {"status": 429, "count": -1},          // 429 FREQUENCY_LIMITED until cleared
//	    "jscode2session": {"errcode": 40226, "count": 1}
//	  },                        // count: 0 = 1, -1 = until cleared
//	  "refund": {"abnormal": 1, "closed": 0}  // how the next refunds settle
//	}
//
// # Mini-program server API (shipping management)
//
//	POST /cgi-bin/stable_token                      the access token (force_refresh ≤ 20 a day)
//	POST /wxa/sec/order/is_trade_managed            {"is_trade_managed"}
//	POST /wxa/sec/order/upload_shipping_info        a shipment; a payment takes one and one re-ship
//	POST /wxa/sec/order/get_order                   WeChat's view: order_state 1–5, shipping
//	POST /wxa/sec/order/notify_confirm_receive      remind the buyer (once)
//	POST /wxa/sec/order/set_msg_jump_path           the page messages open
//	GET  /sim/shipping/{no}                         (control) WeChat's shipping view
//	POST /sim/shipping/{no}/confirm-receipt         (control) the buyer confirms; the settlement event is pushed
//	POST /sim/shipping/{no}/remind-shipping         (control) WeChat reminds the shop to ship
//	GET  /sim/wxa, POST /sim/wxa/revoke-token       (control) the token and settings
//
// Events are sealed and signed as WeChat's message push (security mode,
// JSON) and POSTed to Options.PushURL (push.go). docs/PAYSIM.md has the
// rules each endpoint applies.
//
// jscode2session: appid and secret must match Options (else 40013 / 40125).
// Any code gives a stable openid (OpenIDFor); a code "errcode:<n>" answers
// errcode n (e.g. errcode:40029). With LoginStrictCodes a code works once
// (40163 after).
package paysim
