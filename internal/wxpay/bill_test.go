package wxpay_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"

	"ordersaga/internal/paysim"
	"ordersaga/internal/tradebill"
	"ordersaga/internal/wxpay"
)

var beijing = time.FixedZone("CST", 8*3600)

// at sets the simulator's clock to a Beijing wall time, for control calls
// (the payer paying, a refund by hand): a signed request needs the clock
// back within 5 minutes of the merchant's (now).
func (e *env) at(t *testing.T, when time.Time) {
	t.Helper()
	e.clock.Advance(time.Until(when) - time.Duration(e.clock.off.Load()))
}

func (e *env) now() { e.clock.off.Store(0) }

// bill asks for a day's bill and reads it as the reconciliation does:
// download, gunzip, rows, SHA-1.
func (e *env) bill(t *testing.T, date string) ([]tradebill.Row, tradebill.Summary, error) {
	t.Helper()
	ctx := context.Background()
	tb, err := e.client.TradeBillGzip(ctx, date)
	if err != nil {
		return nil, tradebill.Summary{}, err
	}
	body, err := e.client.DownloadBill(ctx, tb)
	if err != nil {
		return nil, tradebill.Summary{}, err
	}
	defer body.Close()
	dl, err := tradebill.OpenGzip(body, tb.HashValue)
	if err != nil {
		return nil, tradebill.Summary{}, err
	}
	rd, err := tradebill.NewReader(dl)
	if err != nil {
		return nil, tradebill.Summary{}, err
	}
	var rows []tradebill.Row
	for {
		row, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return rows, tradebill.Summary{}, err
		}
		rows = append(rows, row)
	}
	return rows, rd.Summary(), dl.Verify()
}

func TestTradeBillAnswersWhatWeChatAnswersForDaysItHasNotMade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	today := time.Now().In(beijing)
	e.prepayAndPay(t, newOrderNo(), 1280)
	// Today's bill is made tomorrow (the hour rule is tested in paysim).
	_, err := e.client.TradeBillGzip(ctx, today.Format("2006-01-02"))
	wantErr(t, err, wxpay.KindPermanent, wxpay.CodeStatementCreating, http.StatusBadRequest)
	_, err = e.client.TradeBillGzip(ctx, today.AddDate(0, 0, 1).Format("2006-01-02"))
	wantErr(t, err, wxpay.KindPermanent, "INVALID_REQUEST", http.StatusBadRequest)
	_, err = e.client.TradeBillGzip(ctx, today.AddDate(0, -4, 0).Format("2006-01-02"))
	wantErr(t, err, wxpay.KindPermanent, "INVALID_REQUEST", http.StatusBadRequest)
	_, err = e.client.TradeBillGzip(ctx, "2026-13-01")
	wantErr(t, err, wxpay.KindPermanent, "", 0)

	immediate := true
	if _, err := e.sim.UpdateSettings(paysim.Settings{BillsImmediate: &immediate}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.TradeBillGzip(ctx, today.AddDate(0, 0, -2).Format("2006-01-02"))
	wantErr(t, err, wxpay.KindPermanent, wxpay.CodeNoStatement, http.StatusBadRequest)
	if rows, _, err := e.bill(t, today.Format("2006-01-02")); err != nil || len(rows) != 1 || rows[0].TotalFen != 1280 {
		t.Fatalf("today's bill at once: %d rows, %v", len(rows), err)
	}
}

func TestTradeBillListsPaymentsBySuccessTimeAndRefundsByWhenTheyWereAsked(t *testing.T) {
	e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.BillsImmediate = true })
	now := time.Now().In(beijing)
	day1 := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, beijing).AddDate(0, 0, -1)
	day2 := day1.AddDate(0, 0, 1)

	late := newOrderNo()
	e.prepay(t, late, 8800)
	e.at(t, day2.Add(-time.Second)) // 23:59:59 of day 1
	if _, err := e.sim.Pay(late); err != nil {
		t.Fatal(err)
	}
	e.at(t, day2.Add(30*time.Second)) // 00:00:30 of day 2
	if _, err := e.sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: late, OutRefundNo: late + "-R1"}); err != nil {
		t.Fatal(err)
	}
	e.now()
	hand := newOrderNo()
	e.prepayAndPay(t, hand, 12800)
	if _, err := e.sim.MerchantRefund(paysim.MerchantRefundInput{OutTradeNo: hand, RefundFen: 800}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sim.ExternalPayment(paysim.ExternalPaymentInput{OutTradeNo: "OTHERSYS000001", TotalFen: 500}); err != nil {
		t.Fatal(err)
	}

	rows, sum, err := e.bill(t, day1.Format("2006-01-02"))
	if err != nil || len(rows) != 1 || rows[0].OutTradeNo != late || rows[0].TradeState != tradebill.StateSuccess ||
		rows[0].Time.In(beijing).Format("15:04:05") != "23:59:59" || rows[0].FeeMilliFen != 53000 {
		t.Fatalf("bill of day 1: %+v, %v", rows, err)
	}
	if sum.Rows != 1 || sum.TotalFen != 8800 || sum.FeeMilliFen != 53000 {
		t.Errorf("summary of day 1: %+v", sum)
	}
	rows, sum, err = e.bill(t, day2.Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tradebill.Row{}
	for _, r := range rows {
		got[r.TradeState+" "+r.OutTradeNo] = r
	}
	refund, ok := got["REFUND "+late]
	if len(rows) != 4 || !ok || refund.OutRefundNo != late+"-R1" || refund.RequestedRefundFen != 8800 || refund.FeeMilliFen != -53000 {
		t.Fatalf("bill of day 2: %+v", rows)
	}
	if r := got["REFUND "+hand]; !strings.HasPrefix(r.OutRefundNo, "MP") || r.RequestedRefundFen != 800 {
		t.Errorf("hand-made refund row: %+v", r)
	}
	if r := got["SUCCESS OTHERSYS000001"]; r.TotalFen != 500 || r.MchID != e.cfg.MchID {
		t.Errorf("payment of another system: %+v", r)
	}
	if sum.Rows != 4 || sum.TotalFen != 12800+500 || sum.RequestedRefundFen != 8800+800 {
		t.Errorf("summary of day 2: %+v", sum)
	}
}

func TestBillFileIsWeChatsFormat(t *testing.T) {
	e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.BillsImmediate = true })
	no := newOrderNo()
	e.prepayAndPay(t, no, 1280)
	csv, err := e.sim.BillCSV(e.clock.Now().In(beijing).Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(csv), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), csv)
	}
	if lines[0] != "\ufeff"+strings.Join(tradebill.Columns, ",") {
		t.Errorf("header %q", lines[0])
	}
	if lines[2] != strings.Join(tradebill.SummaryColumns, ",") {
		t.Errorf("summary header %q", lines[2])
	}
	fields := strings.Split(lines[1], ",")
	if len(fields) != len(tradebill.Columns) {
		t.Fatalf("%d fields in %q", len(fields), lines[1])
	}
	for i, f := range fields {
		if !strings.HasPrefix(f, "`") {
			t.Errorf("field %d (%s) %q has no backquote", i, tradebill.Columns[i], f)
		}
	}
	want := map[string]string{"商户订单号": "`" + no, "交易状态": "`SUCCESS", "应结订单金额": "`12.80", "订单金额": "`12.80",
		"手续费": "`0.08000", "费率": "`0.60%", "微信退款单号": "`0", "退款金额": "`0.00", "特约商户号": "`0", "交易类型": "`JSAPI"}
	for i, col := range tradebill.Columns {
		if w, ok := want[col]; ok && fields[i] != w {
			t.Errorf("%s = %q, want %q", col, fields[i], w)
		}
	}
	if lines[3] != "`1,`12.80,`0.00,`0.00,`0.08000,`12.80,`0.00" {
		t.Errorf("summary row %q", lines[3])
	}
}

// todaysBill is an env whose simulator took one payment today, and WeChat's
// answer to the request for today's bill.
func todaysBill(t *testing.T) (*env, wxpay.TradeBill) {
	t.Helper()
	e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.BillsImmediate = true })
	e.prepayAndPay(t, newOrderNo(), 1280)
	tb, err := e.client.TradeBillGzip(context.Background(), e.clock.Now().In(beijing).Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	return e, tb
}

func TestBillDownloadIsSignedButItsAnswerIsNot(t *testing.T) {
	e, tb := todaysBill(t)
	ctx := context.Background()
	if !strings.HasPrefix(tb.DownloadURL, "https://api.mch.weixin.qq.com/v3/billdownload/file?token=") || tb.HashType != "SHA1" {
		t.Fatalf("answer %+v", tb)
	}
	path := strings.TrimPrefix(tb.DownloadURL, "https://api.mch.weixin.qq.com")

	// Unsigned: refused.
	resp, err := http.Get(e.simURL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned download: %d, want 401", resp.StatusCode)
	}
	// Signed by the SDK, answer verified as an API answer: the file carries
	// no signature, so the verifying client refuses it — hence a client
	// WithoutValidator for the download.
	hc := &http.Client{Transport: rewrite{e.simURL}}
	verifying, err := core.NewClient(ctx,
		option.WithWechatPayPublicKeyAuthCipher(e.cfg.MchID, e.cfg.MchCertSerial, e.cfg.MchPrivateKey, e.cfg.PublicKeyID, e.cfg.PublicKey),
		option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	res, err := verifying.Get(ctx, tb.DownloadURL)
	if err == nil {
		t.Fatal("the verifying client accepted an unsigned answer")
	}
	if res == nil || res.Response == nil || res.Response.StatusCode != http.StatusOK || res.Response.Header.Get("Wechatpay-Signature") != "" {
		t.Fatalf("download answer: %+v (%v)", res, err)
	}
	body, err := e.client.DownloadBill(ctx, tb)
	if err != nil {
		t.Fatal(err)
	}
	gz, _ := io.ReadAll(body)
	body.Close()
	if !bytes.HasPrefix(gz, []byte{0x1f, 0x8b}) {
		t.Errorf("download is not gzip: % x", gz[:min(len(gz), 8)])
	}
}

// rewrite sends requests to the simulator, as WECHATPAY_BASE_URL does.
type rewrite struct{ base string }

func (r rewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.Scheme, u.Host = "http", strings.TrimPrefix(r.base, "http://")
	out := req.Clone(req.Context())
	out.URL, out.Host = &u, u.Host
	return http.DefaultTransport.RoundTrip(out)
}

func TestBillDownloadGoesOnlyToWeChatAndExpires(t *testing.T) {
	e, tb := todaysBill(t)
	ctx := context.Background()
	for _, u := range []string{"https://evil.example/v3/billdownload/file?token=x", "http://api.mch.weixin.qq.com/v3/billdownload/file", "https://api.mch.weixin.qq.com/notv3"} {
		_, err := e.client.DownloadBill(ctx, wxpay.TradeBill{HashType: "SHA1", HashValue: tb.HashValue, DownloadURL: u})
		if err == nil || wxpay.Classify(err) != wxpay.KindPermanent || wxpay.StatusCode(err) != 0 {
			t.Errorf("download of %s: %v; want refused before any request", u, err)
		}
	}
	e.clock.Advance(5*time.Minute + time.Second)
	_, err := e.client.DownloadBill(ctx, tb)
	wantErr(t, err, wxpay.KindPermanent, "INVALID_REQUEST", http.StatusBadRequest)
}

func TestBadBillsAreCaughtWhenRead(t *testing.T) {
	cases := []struct {
		corrupt string
		want    error
		says    string
	}{
		{paysim.BillSHA1Mismatch, tradebill.ErrBadDownload, "SHA-1"},
		{paysim.BillTruncated, tradebill.ErrBadDownload, "unexpected EOF"},
		{paysim.BillMalformedRow, tradebill.ErrMalformed, "not an amount"},
		{paysim.BillBadSummary, tradebill.ErrMalformed, "does not add up"},
	}
	for _, c := range cases {
		t.Run(c.corrupt, func(t *testing.T) {
			e := newEnv(t, func(o *paysim.Options, _ *wxpay.Config) { o.BillsImmediate = true })
			e.prepayAndPay(t, newOrderNo(), 1280)
			e.prepayAndPay(t, newOrderNo(), 990)
			date := e.clock.Now().In(beijing).Format("2006-01-02")
			e.setFaults(t, paysim.Faults{Bill: &paysim.BillFaults{Corrupt: c.corrupt}})
			_, _, err := e.bill(t, date)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("corrupt bill: %v; want %v saying %q", err, c.want, c.says)
			}
			// The fault was for one bill: the next is good.
			if rows, _, err := e.bill(t, date); err != nil || len(rows) != 2 {
				t.Fatalf("next bill: %d rows, %v", len(rows), err)
			}
		})
	}
}

func TestQueryTransactionByID(t *testing.T) {
	e := newEnv(t)
	no := newOrderNo()
	e.prepayAndPay(t, no, 1280)
	v := e.view(t, no)
	tx, err := e.client.QueryTransaction(context.Background(), v.TransactionID)
	if err != nil || tx.OutTradeNo != no || tx.AmountTotalFen != 1280 || tx.SuccessTime == nil {
		t.Fatalf("query by id: %+v, %v", tx, err)
	}
	_, err = e.client.QueryTransaction(context.Background(), "4200000000000000000000000000")
	wantErr(t, err, wxpay.KindPermanent, "ORDER_NOT_EXIST", http.StatusNotFound)
}
