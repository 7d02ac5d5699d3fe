package wxapp_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"ordersaga/internal/paysim"
	"ordersaga/internal/wxapp"
)

const (
	pushToken  = "ordersagaPushToken1"
	pushAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG" // 43 characters
	otherKey   = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210abcdefg"
)

func TestPushSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		token, key string
		ok         bool
	}{
		{pushToken, pushAESKey, true},
		{"ab", pushAESKey, false},                                // too short
		{"token-with-dash", pushAESKey, false},                   // letters and digits only
		{pushToken, pushAESKey[:42], false},                      // 42 characters
		{pushToken, pushAESKey[:42] + "!", false},                // not base64
		{pushToken, "", false},                                   // missing
		{"abcdefghijklmnopqrstuvwxyz0123456", pushAESKey, false}, // 33 characters
	} {
		_, err := wxapp.NewPush(tc.token, tc.key, appID, nil)
		if (err == nil) != tc.ok {
			t.Errorf("NewPush(%q, %q): %v, want ok=%v", tc.token, tc.key, err, tc.ok)
		}
	}
}

func TestPushIsVerifiedAndDecrypted(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	p, err := wxapp.NewPush(pushToken, pushAESKey, appID, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(`{"ToUserName":"gh_x","MsgType":"event","Event":"trade_manage_order_settlement","transaction_id":"4200000001","merchant_trade_no":"20261206100000123"}`)
	seal := func(token, key, app string, at time.Time) (url.Values, []byte) {
		q, body, err := paysim.SealPush(token, key, app, "gh_x", msg, at)
		if err != nil {
			t.Fatal(err)
		}
		return q, body
	}
	q, body := seal(pushToken, pushAESKey, appID, now)
	got, err := p.Open(q, body)
	if err != nil {
		t.Fatalf("a genuine push: %v", err)
	}
	if string(got.Plain) != string(msg) {
		t.Fatalf("decrypted %s", got.Plain)
	}
	var ev wxapp.Event
	if err := json.Unmarshal(got.Plain, &ev); err != nil || ev.Event != wxapp.EventOrderSettlement || ev.MerchantTradeNo != "20261206100000123" {
		t.Fatalf("event %+v %v", ev, err)
	}
	again, err := p.Open(q, body)
	if err != nil || again.ReplayKey != got.ReplayKey {
		t.Errorf("the same push twice: keys differ or refused (%v)", err)
	}
	q2, body2 := seal(pushToken, pushAESKey, appID, now)
	if other, _ := p.Open(q2, body2); other.ReplayKey == got.ReplayKey {
		t.Error("two deliveries share a replay key")
	}

	tamper := func(edit func(q url.Values)) url.Values {
		c := url.Values{}
		for k, v := range q {
			c[k] = append([]string(nil), v...)
		}
		edit(c)
		return c
	}
	fq, fbody := seal("anotherToken", pushAESKey, appID, now)
	kq, kbody := seal(pushToken, otherKey, appID, now)
	aq, abody := seal(pushToken, pushAESKey, "wx_another_app", now)
	sq, sbody := seal(pushToken, pushAESKey, appID, now.Add(-6*time.Minute))
	for _, tc := range []struct {
		name string
		q    url.Values
		body []byte
		want error
	}{
		{"signed with another token", fq, fbody, wxapp.ErrPushSignature},
		{"msg_signature flipped", tamper(func(q url.Values) { q.Set("msg_signature", flipFirst(q.Get("msg_signature"))) }), body, wxapp.ErrPushSignature},
		{"no msg_signature", tamper(func(q url.Values) { q.Del("msg_signature") }), body, wxapp.ErrPushSignature},
		{"timestamp changed after signing", tamper(func(q url.Values) { q.Set("timestamp", "1") }), body, wxapp.ErrPushSignature},
		{"six minutes old", sq, sbody, wxapp.ErrPushStale},
		{"encrypted with another key", kq, kbody, wxapp.ErrPushBody},
		{"for another mini-program", aq, abody, wxapp.ErrPushForeignApp},
		{"not JSON", q, []byte("<xml/>"), wxapp.ErrPushBody},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.Open(tc.q, tc.body); !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// flipFirst changes a hex signature's first digit (to another one: a
// signature that began with "0" stayed the same when it was set to "0",
// one push in sixteen).
func flipFirst(sig string) string {
	if sig == "" || sig[0] == '0' {
		return "1" + sig[min(len(sig), 1):]
	}
	return "0" + sig[1:]
}

func TestPushURLCheckAnswersEchostr(t *testing.T) {
	now := time.Now()
	p, err := wxapp.NewPush(pushToken, pushAESKey, appID, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, _, err := paysim.SealPush(pushToken, pushAESKey, appID, "gh_x", []byte("{}"), now)
	if err != nil {
		t.Fatal(err)
	}
	q.Set("echostr", "hello-123")
	if echo, err := p.CheckURL(q); err != nil || echo != "hello-123" {
		t.Fatalf("CheckURL: %q %v", echo, err)
	}
	q.Set("signature", wxapp.PushSignature("wrong", q.Get("timestamp"), q.Get("nonce")))
	if _, err := p.CheckURL(q); !errors.Is(err, wxapp.ErrPushSignature) {
		t.Errorf("a wrong signature: %v", err)
	}
}

// The simulator's pushes, as a shop's endpoint receives them, open with
// the shop's settings: the two sides, written apart, agree.
func TestSimulatorPushesOpenWithTheShopsSettings(t *testing.T) {
	p, err := wxapp.NewPush(pushToken, pushAESKey, appID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []wxapp.Event
	shop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m, err := p.Open(r.URL.Query(), body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var ev wxapp.Event
		_ = json.Unmarshal(m.Plain, &ev)
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		_, _ = w.Write([]byte("success"))
	}))
	defer shop.Close()
	f := newFixture(t, func(o *paysim.Options) {
		o.PushURL, o.PushToken, o.PushAESKey = shop.URL, pushToken, pushAESKey
		o.Clock = nil // the shop checks the timestamp against the real clock
	})
	tx := f.paid(t, "WXAPUSH001")
	if _, err := f.sim.RemindShipping(tx.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	c := wxapp.New(wxapp.Options{BaseURL: f.url, AppID: appID, Secret: secret})
	if err := c.UploadShippingInfo(t.Context(), upload(tx, time.Now(), wxapp.ShippingItem{ItemDesc: "Mug", ExpressCompany: "YTO", TrackingNo: "YT9"})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sim.ConfirmReceipt(tx.OutTradeNo); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(events)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Event != wxapp.EventRemindShipping || events[1].Event != wxapp.EventOrderSettlement ||
		events[1].TransactionID != tx.TransactionID || events[1].MerchantTradeNo != tx.OutTradeNo || events[1].ConfirmReceiveMethod != 1 {
		t.Fatalf("events %+v", events)
	}
	v, _ := f.sim.Shipping(tx.OutTradeNo)
	for _, push := range v.Pushes {
		if push.State != paysim.NotifyDelivered {
			t.Errorf("push %s is %s", push.Event, push.State)
		}
	}
}
