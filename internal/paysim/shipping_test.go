package paysim_test

import (
	"net/http"
	"testing"

	"ordersaga/internal/paysim"
)

// WeChat's shipping view over the control API: a payment, then the buyer's
// confirmation, which only a shipped order takes.
func TestShippingControlAPI(t *testing.T) {
	m := newMerchant(t, nil)
	no := orderNo()
	if code, _ := m.control(t, http.MethodGet, "/sim/shipping/"+no, nil); code != http.StatusNotFound {
		t.Fatalf("unknown order: %d", code)
	}
	m.prepay(t, no, 100)
	code, v := m.control(t, http.MethodGet, "/sim/shipping/"+no, nil)
	if code != http.StatusOK || v["order_state"] != float64(0) {
		t.Fatalf("not paid: %d %v", code, v)
	}
	if _, err := m.sim.Pay(no); err != nil {
		t.Fatal(err)
	}
	if code, v = m.control(t, http.MethodGet, "/sim/shipping/"+no, nil); v["order_state"] != float64(paysim.ShipToShip) {
		t.Fatalf("paid: %d %v", code, v)
	}
	// Not shipped: the buyer cannot confirm receipt; WeChat reminds the shop.
	if code, v = m.control(t, http.MethodPost, "/sim/shipping/"+no+"/confirm-receipt", nil); code != http.StatusConflict {
		t.Fatalf("confirm receipt of an order not shipped: %d %v", code, v)
	}
	if code, v = m.control(t, http.MethodPost, "/sim/shipping/"+no+"/remind-shipping", nil); code != http.StatusOK {
		t.Fatalf("remind: %d %v", code, v)
	}
	if pushes := v["pushes"].([]any); len(pushes) != 1 || pushes[0].(map[string]any)["state"] != paysim.PushNoURL {
		t.Fatalf("a push with no URL configured: %v", v["pushes"])
	}
}

func TestShippingFaultsAndSettingsAreValidated(t *testing.T) {
	m := newMerchant(t, nil)
	for _, tc := range []struct {
		name string
		body any
	}{
		{"errcode on a WeChat Pay endpoint", paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointQuery: {ErrCode: -1}}}},
		{"bad_signature on a mini-program endpoint", paysim.Faults{Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointGetOrder: {BadSignature: true}}}},
		{"negative push drops", paysim.Faults{Push: &paysim.PushFaults{Drop: -1}}},
	} {
		if code, out := m.control(t, http.MethodPost, "/sim/faults", tc.body); code != http.StatusBadRequest {
			t.Errorf("%s: %d %v", tc.name, code, out)
		}
	}
	m.setFaults(t, paysim.Faults{
		Endpoints: map[string]*paysim.EndpointFault{paysim.EndpointUploadShippingInfo: {ErrCode: 10060001, Count: 2}},
		Push:      &paysim.PushFaults{Drop: 1},
	})
	if f := m.sim.CurrentFaults(); f.Endpoints[paysim.EndpointUploadShippingInfo].Count != 2 || f.Push.Drop != 1 {
		t.Fatalf("faults %+v %+v", f.Endpoints, f.Push)
	}
	for _, bad := range []map[string]any{{"fresh_payment_ms": -1}, {"push_url": "not a url"}} {
		if code, out := m.control(t, http.MethodPost, "/sim/settings", bad); code != http.StatusBadRequest {
			t.Errorf("settings %v: %d %v", bad, code, out)
		}
	}
	code, out := m.control(t, http.MethodPost, "/sim/settings", map[string]any{"trade_managed": false, "receipt_auto_confirm_ms": 250})
	if code != http.StatusOK || out["trade_managed"] != false || out["receipt_auto_confirm_ms"] != float64(250) {
		t.Fatalf("settings: %d %v", code, out)
	}
	m.sim.RevokeToken(false) // a token is issued (there was none to revoke)
	if code, out = m.control(t, http.MethodPost, "/sim/wxa/revoke-token", map[string]any{"keep_serving": true}); code != http.StatusOK || out["token_revoked"] != true {
		t.Fatalf("revoke: %d %v", code, out)
	}
	if code, out = m.control(t, http.MethodGet, "/sim/wxa", nil); code != http.StatusOK || out["is_trade_managed"] != false {
		t.Fatalf("GET /sim/wxa: %d %v", code, out)
	}
}
