package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/status"
	"ordersaga/internal/store"
	"ordersaga/internal/testenv"
	"ordersaga/workflows"
)

// WeChat's order shipping management end to end: the API, the worker and
// the simulator over HTTP, the shop managed (WECHAT_SHIPPING_MANAGED=on).

var shipTo = map[string]any{
	"receiver_name": "张三", "phone": "13812345678", "province": "广东省", "city": "深圳市",
	"district": "南山区", "detail": "科技园路1号", "postal_code": "518000",
}

func managedEnv(t *testing.T, opts testenv.Options) *testenv.Env {
	opts.ShippingManaged = "on"
	return testenv.New(t, temporalServer, opts)
}

// placeAt places an order with a structured address.
func placeAt(t *testing.T, env *testenv.Env, token string, address map[string]any, items ...item) orderView {
	t.Helper()
	resp := env.Do(http.MethodPost, "/v1/orders", token, map[string]any{"items": items, "shipping_address": address})
	if resp.Status != http.StatusCreated {
		t.Fatalf("create order: %d %s", resp.Status, resp.Body)
	}
	var o orderView
	resp.JSON(t, &o)
	return o
}

func paidAt(t *testing.T, env *testenv.Env, token string, address map[string]any, items ...item) orderView {
	t.Helper()
	o := placeAt(t, env, token, address, items...)
	historyOnFailure(t, env, workflows.WorkflowID(o.OrderNo))
	pay(t, env, token, o.OrderNo)
	simPay(t, env, o.OrderNo)
	waitStatus(t, env, o.OrderNo, status.Paid)
	return o
}

// paidManaged is a managed stack (opts) with one tea paid for by who, to
// shipTo.
func paidManaged(t *testing.T, opts testenv.Options, who string) (*testenv.Env, orderView, string) {
	t.Helper()
	env := managedEnv(t, opts)
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1000, Stock: 5})
	_, token := env.UserToken(who)
	return env, paidAt(t, env, token, shipTo, item{ps[0].ID, 1}), token
}

// shipOK ships an order through the admin API and fails unless it is SHIPPED.
func shipOK(t *testing.T, env *testenv.Env, orderNo string, body any) {
	t.Helper()
	expectStatus(t, env.Do(http.MethodPost, "/v1/admin/orders/"+orderNo+"/ship", env.Config.AdminToken, body), status.Shipped)
}

// simShipping reads WeChat's view of an order from the simulator's control
// API, over HTTP.
func simShipping(t *testing.T, env *testenv.Env, orderNo string) paysim.ShippingView {
	t.Helper()
	resp, err := http.Get(env.SimURL + "/sim/shipping/" + orderNo)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v paysim.ShippingView
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&v) != nil {
		t.Fatalf("GET /sim/shipping/%s: %d", orderNo, resp.StatusCode)
	}
	return v
}

// waitWechatState waits until the simulator shows the order in state.
func waitWechatState(t *testing.T, env *testenv.Env, orderNo string, state int) paysim.ShippingView {
	t.Helper()
	var v paysim.ShippingView
	testenv.Eventually(t, time.Minute, fmt.Sprintf("order %s at WeChat in state %d", orderNo, state), func() (bool, string) {
		v = simShipping(t, env, orderNo)
		return v.OrderState == state, fmt.Sprint(v.OrderState, " ", v.OrderStateDesc)
	})
	return v
}

func confirmReceiptAtSim(t *testing.T, env *testenv.Env, orderNo string) {
	t.Helper()
	resp, err := http.Post(env.SimURL+"/sim/shipping/"+orderNo+"/confirm-receipt", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirm receipt at the simulator: %d", resp.StatusCode)
	}
}

// The "done when": pay an order, ship it with a package through the
// admin API, WeChat shows it shipped with that tracking number; the buyer
// confirms receipt in WeChat and the order is COMPLETED.
func TestShippedOrderCompletesWhenTheBuyerConfirmsReceiptInWeChat(t *testing.T) {
	env := managedEnv(t, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Oolong 250g", PriceFen: 5800, Stock: 5})
	_, token := env.UserToken("openid-shipping-buyer")
	o := paidAt(t, env, token, shipTo, item{ps[0].ID, 2})
	if o.ShippingAddress == nil || o.ShippingAddress.Phone != "13812345678" || !strings.HasPrefix(o.Address, "张三, 广东省深圳市南山区") {
		t.Fatalf("created order's address: %+v %q", o.ShippingAddress, o.Address)
	}

	resp := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", env.Config.AdminToken, map[string]any{
		"logistics_type": "express", "packages": []map[string]string{{"express_company": "SF", "tracking_no": "SF1400000000001"}},
	})
	var shipped orderView
	resp.JSON(t, &shipped)
	if resp.Status != http.StatusOK || shipped.Status != "SHIPPED" || shipped.TrackingNo != "SF1400000000001" ||
		shipped.Shipment == nil || shipped.Shipment.LogisticsType != "express" || shipped.Shipment.ItemDesc != "Oolong 250g ×2" {
		t.Fatalf("ship: %d %s", resp.Status, resp.Body)
	}
	v := waitWechatState(t, env, o.OrderNo, paysim.ShipShipped)
	if len(v.ShippingList) != 1 || v.ShippingList[0].TrackingNo != "SF1400000000001" || v.ShippingList[0].ExpressCompany != "SF" ||
		v.ShippingList[0].Contact == nil || v.ShippingList[0].Contact.ReceiverContact != "*******5678" || len(v.Uploads) != 1 {
		t.Fatalf("WeChat's view after shipping: %+v", v)
	}
	testenv.Eventually(t, 30*time.Second, "the order knows WeChat has the shipment", func() (bool, string) {
		w := orderState(t, env, o.OrderNo).Wechat
		return w != nil && w.Uploaded, fmt.Sprintf("%+v", w)
	})

	confirmReceiptAtSim(t, env, o.OrderNo)
	done := waitStatus(t, env, o.OrderNo, status.Completed)
	if done.CompletedAt == nil {
		t.Fatalf("completed without completed_at: %+v", done)
	}
	waitWorkflowClosed(t, env, workflows.WorkflowID(o.OrderNo))
	final := orderState(t, env, o.OrderNo)
	if final.Wechat == nil || final.Wechat.Settlement == nil || final.Wechat.State != workflows.WechatStateText(workflows.WechatSettled) {
		t.Errorf("WeChat's view in the state query: %+v", final.Wechat)
	}
	if v := simShipping(t, env, o.OrderNo); len(v.Uploads) != 1 || v.Pushes[0].State != paysim.NotifyDelivered {
		t.Errorf("at WeChat: %d uploads, pushes %+v", len(v.Uploads), v.Pushes)
	}
	if m := metricsText(t, env); !strings.Contains(m, `ordersaga_wechat_events_total{event="trade_manage_order_settlement",outcome="accepted"} 1`) ||
		!strings.Contains(m, `ordersaga_wechat_api_calls_total{op="upload_shipping_info",outcome="ok"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "ordersaga_wechat_"))
	}
	// WeChat pushing the event again is harmless: the order has ended.
	resp = pushEvent(t, env, settlementEvent(o.OrderNo, v.TransactionID), time.Now(), testenv.TestPushToken, testenv.TestPushAESKey, "")
	if resp.Status != http.StatusOK || string(resp.Body) != "success" {
		t.Errorf("a repeated settlement: %d %s", resp.Status, resp.Body)
	}
}

func settlementEvent(orderNo, transactionID string) map[string]any {
	return map[string]any{
		"ToUserName": "gh_test", "FromUserName": "o-buyer", "CreateTime": time.Now().Unix(), "MsgType": "event",
		"Event": "trade_manage_order_settlement", "transaction_id": transactionID, "merchant_id": "1900000109",
		"merchant_trade_no": orderNo, "confirm_receive_method": 1, "confirm_receive_time": time.Now().Unix(),
		"settlement_time": time.Now().Unix(),
	}
}

// pushEvent POSTs a message push sealed as WeChat does, with the given
// settings (appID "" = the shop's).
func pushEvent(t *testing.T, env *testenv.Env, msg map[string]any, at time.Time, token, aesKey, appID string) testenv.Response {
	t.Helper()
	if appID == "" {
		appID = env.Config.WechatAppID
	}
	plain, err := json.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	q, body, err := paysim.SealPush(token, aesKey, appID, "gh_test", plain, at)
	if err != nil {
		t.Fatal(err)
	}
	return pushRaw(t, env, q, body)
}

func pushRaw(t *testing.T, env *testenv.Env, q url.Values, body []byte) testenv.Response {
	t.Helper()
	return env.Do(http.MethodPost, "/v1/wechat/events?"+q.Encode(), "", body)
}

// Forged, stale, foreign-appid and replayed pushes are refused and change
// nothing; the genuine one completes the order; events of other kinds and
// of orders the shop never issued are acknowledged.
func TestWechatEventsEndpointRefusesWhatWeChatDidNotSend(t *testing.T) {
	env := managedEnv(t, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Mug", PriceFen: 3900, Stock: 5})
	_, token := env.UserToken("openid-events")
	o := paidAt(t, env, token, shipTo, item{ps[0].ID, 1})
	if r := env.Do(http.MethodPost, "/v1/admin/orders/"+o.OrderNo+"/ship", env.Config.AdminToken,
		map[string]any{"logistics_type": "pickup"}); r.Status != http.StatusOK {
		t.Fatalf("ship: %d %s", r.Status, r.Body)
	}
	tx := waitWechatState(t, env, o.OrderNo, paysim.ShipShipped).TransactionID
	ev := settlementEvent(o.OrderNo, tx)
	now := time.Now()
	const otherKey = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210abcdefg"

	tests := []struct {
		name    string
		send    func() testenv.Response
		status  int
		message string // in the answer, when set
	}{
		{"signed with another Token", func() testenv.Response {
			return pushEvent(t, env, ev, now, "someoneElsesToken", testenv.TestPushAESKey, "")
		}, http.StatusUnauthorized, ""},
		{"msg_signature tampered", func() testenv.Response {
			q, body, _ := paysim.SealPush(testenv.TestPushToken, testenv.TestPushAESKey, env.Config.WechatAppID, "gh_test", mustJSON(t, ev), now)
			q.Set("msg_signature", strings.Repeat("0", 40))
			return pushRaw(t, env, q, body)
		}, http.StatusUnauthorized, ""},
		{"ten minutes old", func() testenv.Response {
			return pushEvent(t, env, ev, now.Add(-10*time.Minute), testenv.TestPushToken, testenv.TestPushAESKey, "")
		}, http.StatusUnauthorized, "timestamp"},
		{"ten minutes ahead", func() testenv.Response {
			return pushEvent(t, env, ev, now.Add(10*time.Minute), testenv.TestPushToken, testenv.TestPushAESKey, "")
		}, http.StatusUnauthorized, "timestamp not within 5m0s of the server's clock"},
		{"for another mini-program", func() testenv.Response {
			return pushEvent(t, env, ev, now, testenv.TestPushToken, testenv.TestPushAESKey, "wx-another-app")
		}, http.StatusUnauthorized, ""},
		{"encrypted with another key", func() testenv.Response {
			return pushEvent(t, env, ev, now, testenv.TestPushToken, otherKey, "")
		}, http.StatusBadRequest, ""},
		{"not JSON", func() testenv.Response {
			q, _, _ := paysim.SealPush(testenv.TestPushToken, testenv.TestPushAESKey, env.Config.WechatAppID, "gh_test", []byte("{}"), now)
			return pushRaw(t, env, q, []byte("<xml><Encrypt>x</Encrypt></xml>"))
		}, http.StatusBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.send()
			if r.Status != tc.status {
				t.Fatalf("answered %d %s, want %d", r.Status, r.Body, tc.status)
			}
			if tc.message != "" && !strings.Contains(r.ErrorMessage(), tc.message) {
				t.Errorf("message %q does not say %q", r.ErrorMessage(), tc.message)
			}
		})
	}
	if n := signals(t, env, workflows.WorkflowID(o.OrderNo), workflows.SignalWechatEvent); n != 0 {
		t.Fatalf("%d events reached the order from refused pushes", n)
	}
	if s := row(t, env, o.OrderNo).Status; s != status.Shipped {
		t.Fatalf("the order is %s after refused pushes", s)
	}

	// Others are acknowledged and change nothing.
	for _, msg := range []map[string]any{
		{"MsgType": "event", "Event": "trade_manage_remind_access_api", "msg": "please use the API"},
		{"MsgType": "text", "Content": "hello"},
		settlementEvent("no such order!", "4200000000000000000000000001"),
	} {
		if r := pushEvent(t, env, msg, time.Now(), testenv.TestPushToken, testenv.TestPushAESKey, ""); r.Status != http.StatusOK || string(r.Body) != "success" {
			t.Fatalf("push %v: %d %s", msg["Event"], r.Status, r.Body)
		}
	}

	// The genuine push completes the order; its copy is a replay.
	q, body, err := paysim.SealPush(testenv.TestPushToken, testenv.TestPushAESKey, env.Config.WechatAppID, "gh_test", mustJSON(t, ev), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := pushRaw(t, env, q, body); r.Status != http.StatusOK || string(r.Body) != "success" {
		t.Fatalf("the genuine push: %d %s", r.Status, r.Body)
	}
	if r := pushRaw(t, env, q, body); r.Status != http.StatusUnauthorized {
		t.Fatalf("its replay: %d %s", r.Status, r.Body)
	}
	waitStatus(t, env, o.OrderNo, status.Completed)
	m := metricsText(t, env)
	for _, want := range []string{
		`ordersaga_wechat_events_total{event="unverified",outcome="refused_signature"} 2`,
		`ordersaga_wechat_events_total{event="unverified",outcome="refused_stale"} 2`,
		`ordersaga_wechat_events_total{event="unverified",outcome="refused_appid"} 1`,
		`ordersaga_wechat_events_total{event="unverified",outcome="refused_replay"} 1`,
		`ordersaga_wechat_events_total{event="other",outcome="ignored"} 2`,
		`ordersaga_wechat_events_total{event="trade_manage_order_settlement",outcome="unknown_order"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(m, "ordersaga_wechat_events"))
		}
	}

	// The console's URL check.
	q, _, _ = paysim.SealPush(testenv.TestPushToken, testenv.TestPushAESKey, env.Config.WechatAppID, "gh_test", []byte("{}"), time.Now())
	q.Set("echostr", "echo-4711")
	if r := env.Do(http.MethodGet, "/v1/wechat/events?"+q.Encode(), "", nil); r.Status != http.StatusOK || string(r.Body) != "echo-4711" {
		t.Errorf("URL check: %d %s", r.Status, r.Body)
	}
	q.Set("signature", strings.Repeat("f", 40))
	if r := env.Do(http.MethodGet, "/v1/wechat/events?"+q.Encode(), "", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("URL check with a wrong signature: %d %s", r.Status, r.Body)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Ship requests WeChat would refuse are refused here, naming the field,
// before anything reaches the order.
func TestShipRequestsWeChatWouldRefuseAreBadRequests(t *testing.T) {
	env := managedEnv(t, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1000, Stock: 5})
	_, token := env.UserToken("openid-bad-ship")
	noPhone, _ := placePaid(t, env, token, item{ps[0].ID, 1}) // free-text address only
	withPhone := paidAt(t, env, token, shipTo, item{ps[0].ID, 1})
	pkg := func(company, no string) map[string]string {
		return map[string]string{"express_company": company, "tracking_no": no}
	}
	sixteen := []map[string]string{}
	for i := range 16 {
		sixteen = append(sixteen, pkg("YTO", fmt.Sprintf("YT%03d", i)))
	}
	tests := []struct {
		name, order string
		body        map[string]any
		field       string
	}{
		{"express without a package", noPhone.OrderNo, map[string]any{"logistics_type": "express"}, "packages"},
		{"more than 15 packages", noPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": sixteen}, "packages"},
		{"unknown logistics type", noPhone.OrderNo, map[string]any{"logistics_type": "drone"}, "logistics_type"},
		{"SF Express without a phone", noPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("YTO", "YT1"), pkg("SF", "SF1")}}, "packages[1].express_company"},
		{"SF Express in lower case without a phone", noPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("sf", "SF1")}}, "packages[0].express_company"},
		{"packages of a pickup", withPhone.OrderNo, map[string]any{"logistics_type": "pickup", "packages": []any{pkg("YTO", "YT1")}}, "packages"},
		{"not every package has left", withPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("YTO", "YT1")}, "is_all_delivered": false}, "is_all_delivered"},
		{"item_desc over 120 characters", withPhone.OrderNo, map[string]any{"logistics_type": "virtual", "item_desc": strings.Repeat("茶", 121)}, "item_desc"},
		{"tracking_no beside packages", withPhone.OrderNo, map[string]any{"logistics_type": "express", "tracking_no": "YT9", "packages": []any{pkg("YTO", "YT1")}}, "tracking_no"},
		{"a carrier code with a space", withPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("Y TO", "YT1")}}, "packages[0].express_company"},
		{"the same tracking number twice", withPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("YTO", "YT1"), pkg("ZTO", "YT1")}}, "packages[1].tracking_no"},
		{"packages without logistics_type", withPhone.OrderNo, map[string]any{"packages": []any{pkg("YTO", "YT1")}}, "logistics_type"},
		{"a consignor phone that is not one", withPhone.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{pkg("YTO", "YT1")}, "consignor_phone": "call me"}, "consignor_phone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.Do(http.MethodPost, "/v1/admin/orders/"+tc.order+"/ship", env.Config.AdminToken, tc.body)
			expectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
			if !strings.Contains(r.ErrorMessage(), tc.field) {
				t.Errorf("the message does not name %s: %s", tc.field, r.Body)
			}
		})
	}
	for _, no := range []string{noPhone.OrderNo, withPhone.OrderNo} {
		if s := row(t, env, no).Status; s != status.Paid {
			t.Errorf("order %s is %s after refused ship requests", no, s)
		}
		if n := updatesAccepted(t, env, workflows.WorkflowID(no), workflows.UpdateShip); n != 0 {
			t.Errorf("order %s took %d ship updates", no, n)
		}
	}
	// SF Express with the shop's phone instead of the receiver's.
	r := env.Do(http.MethodPost, "/v1/admin/orders/"+noPhone.OrderNo+"/ship", env.Config.AdminToken, map[string]any{
		"logistics_type": "express", "packages": []any{pkg("SF", "SF77")}, "consignor_phone": "0755-86013388",
	})
	expectStatus(t, r, status.Shipped)
	v := waitWechatState(t, env, noPhone.OrderNo, paysim.ShipShipped)
	if c := v.ShippingList[0].Contact; c == nil || c.ConsignorContact != "****-****3388" {
		t.Errorf("SF contact %+v", c)
	}
}

func TestOrderTakesAStructuredAddress(t *testing.T) {
	env := testenv.New(t, temporalServer, testenv.Options{})
	ps := env.Seed(store.Product{Name: "Tea", PriceFen: 1000, Stock: 5})
	_, token := env.UserToken("openid-address")
	with := func(edit func(a map[string]any)) map[string]any {
		a := map[string]any{}
		for k, v := range shipTo {
			a[k] = v
		}
		edit(a)
		return a
	}
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"a phone that is not one", map[string]any{"shipping_address": with(func(a map[string]any) { a["phone"] = "12345" })}, "shipping_address.phone"},
		{"no province", map[string]any{"shipping_address": with(func(a map[string]any) { delete(a, "province") })}, "shipping_address.province"},
		{"a postal code of letters", map[string]any{"shipping_address": with(func(a map[string]any) { a["postal_code"] = "ABCDEF" })}, "shipping_address.postal_code"},
		{"a control character", map[string]any{"shipping_address": with(func(a map[string]any) { a["detail"] = "Room 1\n2" })}, "shipping_address.detail"},
		{"both forms", map[string]any{"shipping_address": shipTo, "address": "somewhere"}, "shipping_address or address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["items"] = []item{{ps[0].ID, 1}}
			r := env.Do(http.MethodPost, "/v1/orders", token, tc.body)
			expectError(t, r, http.StatusBadRequest, "INVALID_ARGUMENT")
			if !strings.Contains(r.ErrorMessage(), tc.field) {
				t.Errorf("the message does not name %s: %s", tc.field, r.Body)
			}
		})
	}
	o := placeAt(t, env, token, with(func(a map[string]any) { a["phone"] = "020-81167888"; delete(a, "postal_code") }), item{ps[0].ID, 1})
	got := row(t, env, o.OrderNo)
	want := store.ShipTo{Name: "张三", Phone: "020-81167888", Province: "广东省", City: "深圳市", District: "南山区", Detail: "科技园路1号"}
	if got.ShipTo != want || got.Address != "张三, 广东省深圳市南山区科技园路1号" {
		t.Fatalf("stored %+v %q", got.ShipTo, got.Address)
	}
	r := env.Do(http.MethodGet, "/v1/orders/"+o.OrderNo, token, nil)
	var read orderView
	r.JSON(t, &read)
	if read.ShippingAddress == nil || read.ShippingAddress.Phone != "020-81167888" {
		t.Errorf("read back: %s", r.Body)
	}
}

// WeChat loses the answer to the upload, then does not see the payment for
// a while: the shipment still reaches WeChat exactly once.
func TestUploadFaultsDoNotSpendTheReship(t *testing.T) {
	env, o, _ := paidManaged(t, testenv.Options{}, "openid-upload-faults")
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{
		paysim.EndpointUploadShippingInfo: {ErrCode: -1, After: true, Count: 1}, // done, the answer lost
		paysim.EndpointGetOrder:           {ErrCode: 10060001, Count: 2},        // then "no such payment" twice
	}}); err != nil {
		t.Fatal(err)
	}
	shipOK(t, env, o.OrderNo, map[string]any{"logistics_type": "same_city", "item_desc": "Tea, by bike"})
	testenv.Eventually(t, time.Minute, "the order knows WeChat has the shipment", func() (bool, string) {
		w := orderState(t, env, o.OrderNo).Wechat
		return w != nil && w.Uploaded, fmt.Sprintf("%+v", w)
	})
	v := simShipping(t, env, o.OrderNo)
	if len(v.Uploads) != 1 || v.OrderState != paysim.ShipShipped || v.ShippingList[0].ItemDesc != "Tea, by bike" {
		t.Fatalf("WeChat took %d uploads: %+v", len(v.Uploads), v)
	}
	if f := env.Sim.CurrentFaults().Endpoints; len(f) != 0 {
		t.Errorf("faults left unused: %+v", f)
	}
}

// WeChat's reminder to ship puts the order on the admin's list of orders
// that need a person, and is counted.
func TestReminderToShipPutsTheOrderOnTheFlaggedList(t *testing.T) {
	env, o, _ := paidManaged(t, testenv.Options{}, "openid-remind")
	if _, err := env.Sim.RemindShipping(o.OrderNo); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the order is flagged", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return r.Flag == workflows.FlagShippingReminded, r.Flag
	})
	r := env.Do(http.MethodGet, "/v1/admin/orders/flagged", env.Config.AdminToken, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), o.OrderNo) || !strings.Contains(string(r.Body), workflows.FlagShippingReminded) {
		t.Fatalf("flagged list: %d %s", r.Status, r.Body)
	}
	if m := metricsText(t, env); !strings.Contains(m, `ordersaga_wechat_events_total{event="trade_manage_remind_shipping",outcome="accepted"} 1`) {
		t.Errorf("metrics:\n%s", grepLines(m, "ordersaga_wechat_events"))
	}
}

// The settlement event is lost: the user's confirmation makes the workflow
// ask WeChat, which says receipt was confirmed. Before that, WeChat's word
// is missing and the confirmation is refused.
func TestUserConfirmationIsCheckedWithWeChatWhenItsEventIsLost(t *testing.T) {
	env, o, token := paidManaged(t, testenv.Options{}, "openid-confirm")
	shipOK(t, env, o.OrderNo, map[string]any{"logistics_type": "virtual"})
	waitWechatState(t, env, o.OrderNo, paysim.ShipShipped)
	r := env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil)
	expectError(t, r, http.StatusConflict, "ORDER_NOT_CONFIRMABLE")
	if !strings.Contains(r.ErrorMessage(), "confirm it in WeChat") {
		t.Errorf("refusal: %s", r.Body)
	}
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Push: &paysim.PushFaults{Drop: 1}}); err != nil {
		t.Fatal(err)
	}
	confirmReceiptAtSim(t, env, o.OrderNo)
	expectStatus(t, env.Do(http.MethodPost, "/v1/orders/"+o.OrderNo+"/confirm", token, nil), status.Completed)
	if p := simShipping(t, env, o.OrderNo).Pushes; len(p) != 1 || p[0].State != paysim.NotifyDropped {
		t.Errorf("pushes %+v", p)
	}
}

// No event and no word from the user: at the auto-confirm time the order
// asks WeChat, which confirmed receipt by itself meanwhile (its own
// deadline).
func TestAutoConfirmTimeAsksWeChat(t *testing.T) {
	env, o, _ := paidManaged(t, testenv.Options{AutoConfirm: 2 * time.Second, Sim: func(o *paysim.Options) {
		o.ReceiptAutoConfirm = 500 * time.Millisecond
	}}, "openid-auto")
	if _, err := env.Sim.ApplyFaults(paysim.Faults{Push: &paysim.PushFaults{Drop: 1}}); err != nil {
		t.Fatal(err)
	}
	shipOK(t, env, o.OrderNo, map[string]any{"logistics_type": "express", "packages": []any{map[string]string{"express_company": "ZTO", "tracking_no": "ZT1"}}})
	waitStatus(t, env, o.OrderNo, status.Completed)
	final := orderState(t, env, o.OrderNo)
	if final.Wechat == nil || final.Wechat.Asks < 1 || final.Wechat.Settlement != nil {
		t.Fatalf("WeChat's view: %+v", final.Wechat)
	}
	if why := final.Transitions[len(final.Transitions)-1].Why; !strings.Contains(why, "WeChat says the buyer confirmed receipt") {
		t.Errorf("completed because %q", why)
	}
	if v := simShipping(t, env, o.OrderNo); v.ConfirmReceiveMethod != 2 {
		t.Errorf("confirmed by %d at WeChat, want 2 (WeChat by itself)", v.ConfirmReceiveMethod)
	}
}

// The ship body of before shipping management still ships the order; WeChat
// cannot be told of it, so a person is (SHIPPING_UPLOAD_FAILED).
func TestOldShipBodyUnderShippingManagementIsFlagged(t *testing.T) {
	env, o, _ := paidManaged(t, testenv.Options{}, "openid-old-ship")
	shipOK(t, env, o.OrderNo, map[string]string{"tracking_no": "SF123"})
	testenv.Eventually(t, 30*time.Second, "the order is flagged", func() (bool, string) {
		r := row(t, env, o.OrderNo)
		return slices.Contains(strings.Split(r.Flag, ","), workflows.FlagShippingUploadFailed), r.Flag
	})
	if v := simShipping(t, env, o.OrderNo); len(v.Uploads) != 0 {
		t.Errorf("WeChat took %+v", v.Uploads)
	}
	st := orderState(t, env, o.OrderNo)
	if st.Wechat == nil || !strings.Contains(st.Wechat.UploadRefused, "logistics_type") {
		t.Errorf("WeChat's view: %+v", st.Wechat)
	}
}
