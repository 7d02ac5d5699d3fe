//go:build record

package workflows_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"

	"ordersaga/internal/devserver"
	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// recordVersion is the version TestRecordHistories records (the newest).
var recordVersion = recordedVersions[len(recordedVersions)-1]

// TestRecordHistories runs every path of an order's life on the real stack
// — the embedded Temporal server, PostgreSQL, the WeChat Pay simulator, the
// real activities and the API's notify endpoint — and writes each
// workflow's history to testdata/histories, for TestRecordedHistoriesReplay:
//
//	go test -tags record ./workflows -run TestRecordHistories -count=1 -v
//
// Record only after a change that is meant to change the recorded steps and
// is guarded by workflow.GetVersion (README, "Changing the workflow safely"):
// keep the old recordings too, under new names, so old runs stay covered.
// The histories are written as <path>.<recordVersion>.json: set
// recordVersion to the new change's name (and add it to recordedVersions)
// before recording.
func TestRecordHistories(t *testing.T) {
	// Temporal suggests continuing as new from recordSuggestAt events: above
	// every path but the one that continues on purpose.
	ts, err := testenv.TemporalWithLimits(testenv.Limits{SuggestContinueAsNew: recordSuggestAt})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Stop()
	if err := os.MkdirAll(historiesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range recordings {
		t.Run(p.name, func(t *testing.T) {
			opts := testenv.Options{PayTimeout: p.payTimeout, AutoConfirm: p.autoConfirm}
			if p.managed {
				opts.ShippingManaged = "on"
			}
			r := newRecorder(t, ts, opts)
			saved := p.drive(r)
			for name, id := range saved {
				r.save(name, id)
			}
		})
	}
}

// recordSuggestAt is the history length from which the recording server
// suggests continuing as new (the longest path is ~80 events).
const recordSuggestAt = 120

var recordings = []struct {
	name        string
	payTimeout  time.Duration
	autoConfirm time.Duration // 0 = the default (7 days)
	// managed: WeChat manages the shop's shipping (WECHAT_SHIPPING_MANAGED
	// on); the paths before it record it off.
	managed bool
	// drive runs the path and returns the histories to save: file name → workflow ID.
	drive func(r *recorder) map[string]string
}{
	{"refused-out-of-stock", time.Minute, 0, false, func(r *recorder) map[string]string {
		no, err := r.place(5)
		if workflows.ErrTypeOutOfStock != errType(err) {
			r.t.Fatalf("placing 5 of 3: %v", err)
		}
		return r.ended("refused-out-of-stock", no, status.Refused)
	}},
	{"closed-never-prepaid", 2 * time.Second, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		return r.ended("closed-never-prepaid", no, status.Closed)
	}},
	{"closed-after-prepay", 3 * time.Second, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		return r.ended("closed-after-prepay", no, status.Closed)
	}},
	{"cancelled-by-user", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		r.update(no, workflows.UpdateCancel, nil)
		return r.ended("cancelled-by-user", no, status.Closed)
	}},
	{"paid-shipped-confirmed", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF1234567890"})
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("paid-shipped-confirmed", no, status.Completed)
	}},
	{"paid-refunded-by-user", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByUser, Reason: "changed my mind"})
		return r.ended("paid-refunded-by-user", no, status.Refunded)
	}},
	{"shipped-refunded-by-admin", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{})
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByAdmin, Reason: "parcel lost"})
		return r.ended("shipped-refunded-by-admin", no, status.Refunded)
	}},
	{"oversold-refunded", time.Minute, 0, false, func(r *recorder) map[string]string {
		first := r.mustPlace(2)
		last := r.mustPlace(2) // stock is checked at creation, reserved by nobody
		r.update(first, workflows.UpdatePay, nil)
		r.update(last, workflows.UpdatePay, nil)
		r.payerPays(first)
		r.waitStatus(first, status.Paid)
		r.payerPays(last)
		return r.ended("oversold-refunded", last, status.Refunded)
	}},
	{"notify-lost-found-by-sync", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		r.faults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}})
		r.payerPays(no)
		r.update(no, workflows.UpdateSync, nil)
		r.waitStatus(no, status.Paid)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{})
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("notify-lost-found-by-sync", no, status.Completed)
	}},
	{"notify-lost-found-at-deadline", 4 * time.Second, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		r.faults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}})
		r.payerPays(no)
		r.waitStatus(no, status.Paid)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{})
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("notify-lost-found-at-deadline", no, status.Completed)
	}},
	{"paid-a-moment-before-close", 3 * time.Second, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		if _, err := r.env.Sim.PayOnClose(no); err != nil {
			r.t.Fatal(err)
		}
		r.waitStatus(no, status.Paid)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{})
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("paid-a-moment-before-close", no, status.Completed)
	}},
	{"refund-abnormal", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.faults(paysim.Faults{Refund: &paysim.RefundFaults{Abnormal: 1}})
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByUser})
		return r.ended("refund-abnormal", no, status.RefundFailed)
	}},
	{"payment-mismatch", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		r.faults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}})
		tx := r.payerPays(no)
		// A payment reported under another mini-program: never this order's.
		p := workflows.PaymentNotice{
			OutTradeNo: no, TransactionID: tx.TransactionID, TradeState: workflows.TradeSuccess,
			AppID: "wx-another-app", MchID: tx.MchID, AmountFen: tx.TotalFen, PayerTotalFen: tx.TotalFen,
			Currency: "CNY", PayerOpenID: tx.PayerOpenID, SuccessTime: tx.SuccessTime, Source: "notify",
		}
		if err := r.env.Temporal.SignalWorkflow(r.ctx, workflows.WorkflowID(no), "", workflows.SignalPayment, p); err != nil {
			r.t.Fatal(err)
		}
		saved := r.ended("payment-mismatch-closed", no, status.Closed)
		stray := workflows.StrayPaymentWorkflowID(tx.TransactionID)
		var v workflows.StrayPaymentView
		if err := r.env.Temporal.GetWorkflow(r.ctx, stray, "").Get(r.ctx, &v); err != nil || v.Status != workflows.StrayRefunded {
			r.t.Fatalf("stray payment workflow: %+v %v", v, err)
		}
		saved["payment-mismatch-stray-refund"] = stray
		return saved
	}},
	{"shipped-auto-confirmed", time.Minute, 2 * time.Second, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF2000000001"})
		return r.ended("shipped-auto-confirmed", no, status.Completed)
	}},
	{"refund-settled-by-query", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		// The refund's notify is lost: the workflow asks WeChat after its first poll interval.
		r.faults(paysim.Faults{Notify: &paysim.NotifyFaults{Drop: 1}})
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByUser, Reason: "wrong size"})
		return r.ended("refund-settled-by-query", no, status.Refunded)
	}},
	{"refund-refused-by-wechat", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.faults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
			"refund": {Status: 403, Code: "USER_ACCOUNT_ABNORMAL", Message: "the payer's account is abnormal"},
		}})
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByAdmin, Reason: "out of season"})
		return r.ended("refund-refused-by-wechat", no, status.RefundFailed)
	}},
	{"cancelled-from-temporal", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		// An operator cancels the workflow (Web UI, CLI): taken as the user's cancel.
		if err := r.env.Temporal.CancelWorkflow(r.ctx, workflows.WorkflowID(no), ""); err != nil {
			r.t.Fatal(err)
		}
		return r.ended("cancelled-from-temporal", no, status.Closed)
	}},
	{"paid-after-close-stray-refund", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.mustPlace(1)
		r.update(no, workflows.UpdatePay, nil)
		// WeChat's queries do not see the payment yet and its notify is
		// late: the user's cancel closes the order, then the notify comes
		// for an ended workflow and the API starts the stray workflow.
		r.faults(paysim.Faults{
			Endpoints: map[string]*paysim.EndpointFault{"query": {Status: 404, Code: "ORDER_NOT_EXIST", Count: 2}},
			Notify:    &paysim.NotifyFaults{DelayMS: 4000},
		})
		tx := r.payerPays(no)
		r.update(no, workflows.UpdateCancel, nil)
		r.ended("order", no, status.Closed)
		stray := workflows.StrayPaymentWorkflowID(tx.TransactionID)
		testenv.Eventually(r.t, time.Minute, "the stray payment workflow refunded", func() (bool, string) {
			var v workflows.StrayPaymentView
			enc, err := r.env.Temporal.QueryWorkflow(r.ctx, stray, "", workflows.QueryState)
			if err == nil {
				err = enc.Get(&v)
			}
			if err != nil {
				return false, err.Error()
			}
			return v.Status == workflows.StrayRefunded, v.Status
		})
		var v workflows.StrayPaymentView
		if err := r.env.Temporal.GetWorkflow(r.ctx, stray, "").Get(r.ctx, &v); err != nil || v.Status != workflows.StrayRefunded {
			r.t.Fatalf("stray payment workflow: %+v %v", v, err)
		}
		return map[string]string{"paid-after-close-stray-refund": stray}
	}},
	{"shipped-continued", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF3000000001"})
		id := workflows.WorkflowID(no)
		firstRun := runOf(r.t, r.ctx, r.env, id)
		// WeChat repeats the payment's notify until Temporal suggests
		// continuing as new: the order goes on in a new run.
		r.repeatNotifyUntil(no, "continued as new", continuedFrom(firstRun))
		r.saveRun("shipped-continued-first-run", id, firstRun)
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("shipped-continued", no, status.Completed)
	}},
	// WeChat's order shipping management (ChangeWechatShipping).
	{"shipped-confirmed-in-wechat", time.Minute, 0, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, expressShipment("YT3000000001"))
		r.wechatHasShipment(no)
		r.buyerConfirmsInWechat(no)
		return r.ended("shipped-confirmed-in-wechat", no, status.Completed)
	}},
	{"shipped-completed-asking-wechat", time.Minute, 2 * time.Second, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		// The settlement event is lost: the order asks WeChat at the
		// auto-confirm time, reminds the buyer, and asks again.
		r.faults(paysim.Faults{Push: &paysim.PushFaults{Drop: 1}})
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{LogisticsType: workflows.LogisticsSameCity, ItemDesc: "mug, by bike"})
		r.wechatHasShipment(no)
		testenv.Eventually(r.t, time.Minute, "the buyer reminded", func() (bool, string) {
			v, _ := r.env.Sim.Shipping(no)
			return v.RemindedAt != nil, fmt.Sprint(v.OrderState)
		})
		r.buyerConfirmsInWechat(no)
		return r.ended("shipped-completed-asking-wechat", no, status.Completed)
	}},
	{"shipping-upload-answer-lost", time.Minute, 0, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.faults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
			paysim.EndpointUploadShippingInfo: {ErrCode: -1, After: true, Count: 1},
		}})
		r.update(no, workflows.UpdateShip, expressShipment("YT3000000002"))
		testenv.Eventually(r.t, time.Minute, "the order knows WeChat has the shipment", func() (bool, string) {
			w := r.state(no).Wechat
			return w != nil && w.Uploaded, fmt.Sprintf("%+v", w)
		})
		r.buyerConfirmsInWechat(no)
		return r.ended("shipping-upload-answer-lost", no, status.Completed)
	}},
	{"shipping-refused-then-refunded", time.Minute, 0, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		// The old ship body: WeChat cannot be told, the order is flagged;
		// the shop refunds it.
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF3000000003"})
		testenv.Eventually(r.t, time.Minute, "flagged", func() (bool, string) {
			v := r.state(no)
			return slices.Contains(v.Flags, workflows.FlagShippingUploadFailed), fmt.Sprint(v.Flags)
		})
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByAdmin, Reason: "could not be reported"})
		return r.ended("shipping-refused-then-refunded", no, status.Refunded)
	}},
	{"reminded-to-ship-then-confirmed", time.Minute, 0, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		if _, err := r.env.Sim.RemindShipping(no); err != nil {
			r.t.Fatal(err)
		}
		testenv.Eventually(r.t, time.Minute, "flagged", func() (bool, string) {
			v := r.state(no)
			return slices.Contains(v.Flags, workflows.FlagShippingReminded), fmt.Sprint(v.Flags)
		})
		r.update(no, workflows.UpdateShip, expressShipment("YT3000000004"))
		r.wechatHasShipment(no)
		// The user's word is checked with WeChat: refused until WeChat has
		// the receipt; the event is lost, so the confirmation completes it.
		r.updateRefused(no, workflows.UpdateConfirm, workflows.ErrTypeNotConfirmable)
		r.faults(paysim.Faults{Push: &paysim.PushFaults{Drop: 1}})
		r.buyerConfirmsInWechat(no)
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("reminded-to-ship-then-confirmed", no, status.Completed)
	}},
	// A shipment WeChat has, the order's run continued as new while the
	// buyer has not confirmed, and the settlement event taken by the run
	// that began from the state handed on.
	{"shipped-in-wechat-continued", time.Minute, 0, true, func(r *recorder) map[string]string {
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, expressShipment("YT3000000005"))
		r.wechatHasShipment(no)
		testenv.Eventually(r.t, time.Minute, "the order knows WeChat has the shipment", func() (bool, string) {
			w := r.state(no).Wechat
			return w != nil && w.Uploaded, fmt.Sprintf("%+v", w)
		})
		id, firstRun := workflows.WorkflowID(no), r.continueAsNew(no)
		r.saveRun("shipped-in-wechat-continued-first-run", id, firstRun)
		r.buyerConfirmsInWechat(no)
		return r.ended("shipped-in-wechat-continued", no, status.Completed)
	}},
	// Refunds of some items (ChangePartialRefunds): one of two mugs, then
	// the other (REFUNDED in two refunds, a second apart); and one of two
	// refunded before the order ships and completes.
	{"part-refunds-then-refunded", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrderOf(2)
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByUser, Reason: "one is chipped",
			Items: []workflows.RefundItem{{ProductID: r.product.ID, Quantity: 1}}})
		r.refunded(no, r.product.PriceFen)
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByAdmin, Reason: "the other too"})
		return r.ended("part-refunds-then-refunded", no, status.Refunded)
	}},
	{"part-refund-then-completed", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrderOf(2)
		r.update(no, workflows.UpdateRequestRefund, workflows.RefundRequest{By: workflows.ByUser,
			Items: []workflows.RefundItem{{ProductID: r.product.ID, Quantity: 1}}})
		r.refunded(no, r.product.PriceFen)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF4000000001"})
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("part-refund-then-completed", no, status.Completed)
	}},
	// After-sales of a shipped order: a return approved, sent back,
	// received and refunded with its goods restocked; a refund-only one
	// rejected, then another approved and refunded. (Their timers — days —
	// are the workflow tests': TestAfterSaleTimers.)
	{"after-sale-return-refunded", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrderOf(2)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF5000000001"})
		id := workflows.AfterSaleNo(no, 1)
		r.update(no, workflows.UpdateRequestAfterSale, workflows.AfterSaleRequest{Type: workflows.AfterSaleReturnAndRefund,
			Items: []workflows.RefundItem{{ProductID: r.product.ID, Quantity: 1}}, Reason: "arrived broken"})
		r.update(no, workflows.UpdateAfterSaleAction, workflows.AfterSaleAction{ID: id, Action: workflows.AfterSaleApprove, By: workflows.ByAdmin})
		r.update(no, workflows.UpdateAfterSaleAction, workflows.AfterSaleAction{ID: id, Action: workflows.AfterSaleReturn, By: workflows.ByUser,
			ExpressCompany: "SF", TrackingNo: "SF5000000002"})
		r.update(no, workflows.UpdateAfterSaleAction, workflows.AfterSaleAction{ID: id, Action: workflows.AfterSaleReceive, By: workflows.ByAdmin})
		r.refunded(no, r.product.PriceFen)
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("after-sale-return-refunded", no, status.Completed)
	}},
	{"after-sale-rejected-then-refund-only", time.Minute, 0, false, func(r *recorder) map[string]string {
		no := r.paidOrderOf(2)
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF5000000003"})
		one := workflows.AfterSaleRequest{Type: workflows.AfterSaleRefundOnly, Items: []workflows.RefundItem{{ProductID: r.product.ID, Quantity: 1}}}
		r.update(no, workflows.UpdateRequestAfterSale, one)
		r.update(no, workflows.UpdateAfterSaleAction, workflows.AfterSaleAction{ID: workflows.AfterSaleNo(no, 1), Action: workflows.AfterSaleReject,
			By: workflows.ByAdmin, Note: "no damage in the photos"})
		r.update(no, workflows.UpdateRequestAfterSale, one)
		r.update(no, workflows.UpdateAfterSaleAction, workflows.AfterSaleAction{ID: workflows.AfterSaleNo(no, 2), Action: workflows.AfterSaleApprove, By: workflows.ByAdmin})
		r.refunded(no, r.product.PriceFen)
		r.update(no, workflows.UpdateConfirm, nil)
		return r.ended("after-sale-rejected-then-refund-only", no, status.Completed)
	}},
	// An order the workers of before workflows.ChangeHistoryBudget ran past
	// its budget (beforeTheBudget), continued as new by the first check a
	// worker with the change made live: its first run holds both.
	{"upgraded-continued", time.Minute, 0, false, func(r *recorder) map[string]string {
		r.env.StopWorker()
		r.env.StartWorkerWith(func(o *sdkworker.Options) { o.Interceptors = append(o.Interceptors, &beforeTheBudget{}) })
		no := r.paidOrder()
		r.update(no, workflows.UpdateShip, workflows.ShipRequest{TrackingNo: "SF3000000002"})
		id := workflows.WorkflowID(no)
		firstRun := runOf(r.t, r.ctx, r.env, id)
		r.repeatNotifyUntil(no, "past the suggestion on the old workers", func(d *workflowservice.DescribeWorkflowExecutionResponse) bool {
			return d.GetWorkflowExecutionInfo().GetHistoryLength() >= recordSuggestAt+20 && d.GetPendingWorkflowTask() == nil
		})
		r.env.StopWorker()
		r.env.StartWorker()
		r.repeatNotifyUntil(no, "continued as new on the new workers", continuedFrom(firstRun))
		r.saveRun("upgraded-continued-first-run", id, firstRun)
		r.update(no, workflows.UpdateConfirm, nil)
		r.ended("upgraded-continued", no, status.Completed)
		return nil // the run it continued in is shipped-continued's
	}},
}

func expressShipment(trackingNo string) workflows.ShipRequest {
	return workflows.ShipRequest{LogisticsType: workflows.LogisticsExpress, TrackingNo: trackingNo, ItemDesc: "Limited edition mug ×1",
		Packages: []workflows.Package{{ExpressCompany: "YTO", TrackingNo: trackingNo}}}
}

// wechatHasShipment waits until the simulator has the order's shipment.
func (r *recorder) wechatHasShipment(no string) {
	testenv.Eventually(r.t, time.Minute, "WeChat has the shipment of "+no, func() (bool, string) {
		v, _ := r.env.Sim.Shipping(no)
		return v.OrderState == paysim.ShipShipped, fmt.Sprint(v.OrderState)
	})
}

// buyerConfirmsInWechat plays the buyer confirming receipt in WeChat.
func (r *recorder) buyerConfirmsInWechat(no string) {
	if _, err := r.env.Sim.ConfirmReceipt(no); err != nil {
		r.t.Fatalf("confirm receipt of %s at the simulator: %v", no, err)
	}
}

// updateRefused sends an update the order must refuse with errType.
func (r *recorder) updateRefused(no, name, want string) {
	h, err := r.env.Temporal.UpdateWorkflow(r.ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.WorkflowID(no), UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted})
	if err == nil {
		err = h.Get(r.ctx, nil)
	}
	if got := errType(err); got != want {
		r.t.Fatalf("%s %s: %v, want a %s refusal", name, no, err, want)
	}
}

// continueAsNew repeats WeChat's notify of the order's payment (a repeat
// the order keeps) until Temporal suggests continuing as new and the order
// goes on in a new run; it returns the ID of the run that continued.
func (r *recorder) continueAsNew(no string) string {
	firstRun := runOf(r.t, r.ctx, r.env, workflows.WorkflowID(no))
	r.repeatNotifyUntil(no, "continued as new", continuedFrom(firstRun))
	return firstRun
}

type recorder struct {
	t       *testing.T
	ctx     context.Context
	env     *testenv.Env
	product store.Product
	uid     int64
}

func newRecorder(t *testing.T, ts *devserver.Server, opts testenv.Options) *recorder {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	env := testenv.New(t, ts, opts)
	ps := env.Seed(store.Product{Name: "Limited edition mug", PriceFen: 3900, Stock: 3})
	uid, _ := env.UserToken("o-recorder-" + t.Name())
	return &recorder{t: t, ctx: ctx, env: env, product: ps[0], uid: uid}
}

// place starts an order workflow the way the API does (update-with-start).
func (r *recorder) place(quantity int64) (string, error) {
	no := strconv.FormatInt(time.Now().UnixNano(), 10)[:16]
	start := r.env.Temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.WorkflowID(no),
		TaskQueue:                r.env.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		StaticSummary:            fmt.Sprintf("Order %s · ¥%.2f · 1 item", no, float64(quantity*r.product.PriceFen)/100),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.AttrOrderNo.ValueSet(no), workflows.AttrOrderStatus.ValueSet(string(status.Pending)),
			workflows.AttrOrderUserID.ValueSet(strconv.FormatInt(r.uid, 10))),
	}, workflows.OrderWorkflowName, workflows.OrderInput{
		OrderNo: no, UserID: r.uid, Items: []workflows.Item{{ProductID: r.product.ID, Quantity: quantity}},
		PayTimeout: r.env.Config.OrderPayTimeout, AutoConfirm: r.env.Config.OrderAutoConfirm, RefundInterval: r.env.Config.RefundInterval,
		AfterSaleWindow: r.env.Config.AfterSaleWindow,
		AppID:           r.env.Config.WechatAppID, MchID: r.env.Config.PayMchID,
	})
	h, err := r.env.Temporal.UpdateWithStartWorkflow(r.ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions:          client.UpdateWorkflowOptions{UpdateName: workflows.UpdateCreate, WaitForStage: client.WorkflowUpdateStageCompleted},
	})
	if err != nil {
		return no, err
	}
	var v workflows.OrderView
	return no, h.Get(r.ctx, &v)
}

func (r *recorder) mustPlace(quantity int64) string {
	no, err := r.place(quantity)
	if err != nil {
		r.t.Fatalf("place: %v", err)
	}
	return no
}

func (r *recorder) update(no, name string, arg any) {
	opts := client.UpdateWorkflowOptions{WorkflowID: workflows.WorkflowID(no), UpdateName: name, WaitForStage: client.WorkflowUpdateStageCompleted}
	if arg != nil {
		opts.Args = []any{arg}
	}
	h, err := r.env.Temporal.UpdateWorkflow(r.ctx, opts)
	if err == nil {
		err = h.Get(r.ctx, nil)
	}
	if err != nil {
		r.t.Fatalf("%s %s: %v", name, no, err)
	}
}

func (r *recorder) faults(f paysim.Faults) {
	if _, err := r.env.Sim.ApplyFaults(f); err != nil {
		r.t.Fatal(err)
	}
}

func (r *recorder) payerPays(no string) paysim.TransactionView {
	tx, err := r.env.Sim.Pay(no)
	if err != nil {
		r.t.Fatalf("pay %s at the simulator: %v", no, err)
	}
	return tx
}

// paidOrderOf is a paid order of quantity mugs.
func (r *recorder) paidOrderOf(quantity int64) string {
	no := r.mustPlace(quantity)
	r.update(no, workflows.UpdatePay, nil)
	r.payerPays(no)
	r.waitStatus(no, status.Paid)
	return no
}

// refunded waits until WeChat returned fen of the order (its state).
func (r *recorder) refunded(no string, fen int64) {
	testenv.Eventually(r.t, time.Minute, fmt.Sprintf("order %s refunded %d fen", no, fen), func() (bool, string) {
		v := r.state(no)
		return v.RefundedFen == fen, fmt.Sprint(v.RefundedFen)
	})
}

func (r *recorder) paidOrder() string {
	no := r.mustPlace(1)
	r.update(no, workflows.UpdatePay, nil)
	r.payerPays(no)
	r.waitStatus(no, status.Paid)
	return no
}

// repeatNotifyUntil sends WeChat's notify of the order's payment again
// and again until done says so of its workflow.
func (r *recorder) repeatNotifyUntil(no, what string, done func(*workflowservice.DescribeWorkflowExecutionResponse) bool) {
	var repeat workflows.PaymentNotice
	for _, t := range r.env.Sim.Transactions() {
		if t.OutTradeNo == no {
			repeat = workflows.PaymentNotice{OutTradeNo: no, TransactionID: t.TransactionID, TradeState: workflows.TradeSuccess,
				AppID: t.AppID, MchID: t.MchID, AmountFen: t.TotalFen, PayerTotalFen: t.TotalFen, Currency: "CNY", Source: "notify"}
		}
	}
	notifyUntil(r.t, r.ctx, r.env, repeat, "order "+no+" "+what, done)
}

func (r *recorder) state(no string) workflows.OrderView {
	var v workflows.OrderView
	enc, err := r.env.Temporal.QueryWorkflow(r.ctx, workflows.WorkflowID(no), "", workflows.QueryState)
	if err == nil {
		err = enc.Get(&v)
	}
	if err != nil {
		r.t.Fatalf("query %s: %v", no, err)
	}
	return v
}

func (r *recorder) waitStatus(no string, want status.Order) {
	testenv.Eventually(r.t, time.Minute, "order "+no+" "+string(want), func() (bool, string) {
		s := r.state(no).Status
		return s == want, string(s)
	})
}

// ended waits for the order's workflow to end in status want.
func (r *recorder) ended(name, no string, want status.Order) map[string]string {
	var v workflows.OrderView
	if err := r.env.Temporal.GetWorkflow(r.ctx, workflows.WorkflowID(no), "").Get(r.ctx, &v); err != nil {
		r.t.Fatalf("order %s: %v", no, err)
	}
	if v.Status != want {
		r.t.Fatalf("order %s ended %s, want %s (%+v)", no, v.Status, want, v.Transitions)
	}
	return map[string]string{name: workflows.WorkflowID(no)}
}

func (r *recorder) save(name, workflowID string) { r.saveRun(name, workflowID, "") }

// saveRun writes the history of one run of a workflow ("": the latest).
func (r *recorder) saveRun(name, workflowID, runID string) {
	it := r.env.Temporal.GetWorkflowHistory(r.ctx, workflowID, runID, false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			r.t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		r.t.Fatal(err)
	}
	path := filepath.Join(historiesDir, historyFile(name, recordVersion))
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("wrote %s (%d events)", path, len(h.Events))
}

func errType(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Type()
	}
	return ""
}
