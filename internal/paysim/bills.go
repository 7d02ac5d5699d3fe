package paysim

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The trade bill (交易账单, bill_type ALL, tar_type GZIP) of any day, made
// from the simulator's own records in WeChat's format: see docs/PAYSIM.md
// ("Bills") for the format and what it is based on.

// Endpoint names of the bill calls (endpoint faults).
const (
	EndpointTradeBill    = "tradebill"     // GET /v3/bill/tradebill
	EndpointBillDownload = "bill_download" // GET /v3/billdownload/file?token=
)

// Bill corruptions (faults "bill": {"corrupt": …}): what the next bill
// answered is wrong with.
const (
	BillSHA1Mismatch = "sha1_mismatch"  // hash_value is not the SHA-1 of the bill
	BillTruncated    = "truncated_gzip" // the download stops halfway through the gzip stream
	BillMalformedRow = "malformed_row"  // an amount of the first row is not a number (hash_value matches)
	BillBadSummary   = "bad_summary"    // the summary's 订单总金额 is off by one fen (hash_value matches)
)

var billCorruptions = map[string]bool{BillSHA1Mismatch: true, BillTruncated: true, BillMalformedRow: true, BillBadSummary: true}

// BillFaults spoil the next Count bills answered (0 means 1, -1 until
// cleared); the download after is served as spoiled.
type BillFaults struct {
	Corrupt string `json:"corrupt,omitempty"`
	Count   int    `json:"count,omitempty"`
}

// Bill settings and what they are based on.
const (
	// BillFeeRateBP is the fee rate of the simulated merchant, in basis
	// points: 0.60 %, the common rate of mini-program merchants. Fees are
	// rounded half up to the fen per row, as merchants' bills show them.
	BillFeeRateBP = 60
	// billReadyHour: WeChat makes a day's bill from 9:00 the next day and
	// says to ask after 10:00 (Beijing time); earlier is STATEMENT_CREATING.
	billReadyHour = 10
	// billHistory: WeChat keeps bills for three months.
	billHistoryMonths = 3
	// billURLLife: a download_url lives a few minutes.
	billURLLife = 5 * time.Minute
	// billDownloadURL is where WeChat sends merchants for the file; the
	// SDK's host rewriting brings the merchant back here.
	billDownloadURL = "https://api.mch.weixin.qq.com/v3/billdownload/file?token="
	// maxSyntheticTrades bounds a generated day (the file is kept in memory
	// while its download_url lives).
	maxSyntheticTrades = 2_000_000
)

// billBook is the simulator's bill state (under Sim.mu).
type billBook struct {
	immediate bool
	frozen    map[string]*billFile // bills of past days, made once, as WeChat does
	downloads map[string]*billDownload
	synthetic map[string]SyntheticDay
	faults    BillFaults
}

func newBillBook(immediate bool) billBook {
	return billBook{immediate: immediate, frozen: map[string]*billFile{},
		downloads: map[string]*billDownload{}, synthetic: map[string]SyntheticDay{}}
}

type billFile struct {
	gz      []byte
	sha1    string
	rows    int
	rawSize int64
}

type billDownload struct {
	gz      []byte
	expires time.Time
}

// ---- the days ----

func dayStart(date string) (time.Time, error) {
	d, err := time.ParseInLocation("2006-01-02", date, chinaTime)
	if err != nil || d.Format("2006-01-02") != date {
		return time.Time{}, fmt.Errorf("%w: bill_date %q is not yyyy-MM-DD", ErrInvalid, date)
	}
	return d, nil
}

// billAvailability says whether date's bill can be asked for now: "" when
// it can, else WeChat's error code and message.
func (b *billBook) availability(day, now time.Time) (code, msg string) {
	nowCN := now.In(chinaTime)
	today := time.Date(nowCN.Year(), nowCN.Month(), nowCN.Day(), 0, 0, 0, 0, chinaTime)
	switch {
	case day.After(today):
		return "INVALID_REQUEST", "bill_date 不能晚于今天"
	case day.Before(today.AddDate(0, -billHistoryMonths, 0)):
		return "INVALID_REQUEST", "仅支持下载三个月内的账单"
	case b.immediate:
		return "", ""
	case nowCN.Before(day.AddDate(0, 0, 1).Add(billReadyHour * time.Hour)):
		return "STATEMENT_CREATING", "账单生成中，请稍后重试"
	}
	return "", ""
}

// ---- API: apply for and download the bill ----

func (s *Sim) handleTradeBill(r *http.Request, _ []byte) reply {
	q := r.URL.Query()
	date := q.Get("bill_date")
	switch {
	case date == "":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "缺少参数 bill_date")
	case q.Get("bill_type") != "" && q.Get("bill_type") != "ALL":
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "paysim serves bill_type ALL only")
	case q.Get("tar_type") != "GZIP":
		// WeChat sends the bill uncompressed without it; paysim gzips only.
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "paysim serves tar_type GZIP only")
	}
	day, err := dayStart(date)
	if err != nil {
		return errReply(http.StatusBadRequest, "PARAM_ERROR", "bill_date 格式须为yyyy-MM-DD")
	}
	now := s.now()
	s.mu.Lock()
	if code, msg := s.bills.availability(day, now); code != "" {
		s.mu.Unlock()
		return errReply(http.StatusBadRequest, code, msg)
	}
	corrupt := s.takeBillFaultLocked()
	file := s.bills.frozen[date]
	var entries []billEntry
	var synth *SyntheticDay
	if file == nil || corrupt == BillMalformedRow || corrupt == BillBadSummary {
		entries = s.billEntriesLocked(day)
		if sd, ok := s.bills.synthetic[date]; ok {
			synth = &sd
		}
	}
	s.mu.Unlock()

	if file == nil || corrupt == BillMalformedRow || corrupt == BillBadSummary {
		made, err := makeBill(entries, synth, s.opts.AppID, s.opts.MchID, corrupt)
		if err != nil {
			return errReply(http.StatusInternalServerError, "SYSTEM_ERROR", "paysim: "+err.Error())
		}
		file = made
		nowCN := now.In(chinaTime)
		if corrupt == "" && day.Before(time.Date(nowCN.Year(), nowCN.Month(), nowCN.Day(), 0, 0, 0, 0, chinaTime)) {
			// A past day's bill is made once; today's (bills_immediate)
			// is made again for each request, as the day goes on.
			s.mu.Lock()
			if f := s.bills.frozen[date]; f != nil {
				file = f
			} else {
				s.bills.frozen[date] = file
			}
			s.mu.Unlock()
		}
	}
	if file.rows == 0 {
		return errReply(http.StatusBadRequest, "NO_STATEMENT_EXIST", "该日期无交易，账单不存在")
	}
	hash, gz := file.sha1, file.gz
	switch corrupt {
	case BillSHA1Mismatch:
		hash = flipHex(hash)
	case BillTruncated:
		gz = gz[:len(gz)/2]
	}
	token := randString(40)
	s.mu.Lock()
	for k, d := range s.bills.downloads {
		if now.After(d.expires) {
			delete(s.bills.downloads, k)
		}
	}
	s.bills.downloads[token] = &billDownload{gz: gz, expires: now.Add(billURLLife)}
	s.mu.Unlock()
	s.log.Info("paysim: trade bill", "bill_date", date, "rows", file.rows, "gzip_bytes", len(gz), "corrupt", corrupt)
	return jsonReply(http.StatusOK, map[string]string{
		"hash_type": "SHA1", "hash_value": hash, "download_url": billDownloadURL + token,
	})
}

// handleBillDownload serves the file of a download_url. The request is
// signed like every API request; the answer is not (WeChat's is not: the
// merchant checks the file's SHA-1 instead).
func (s *Sim) handleBillDownload(w http.ResponseWriter, r *http.Request) {
	unsigned := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintf(w, `{"code":%q,"message":%q}`, code, msg)
	}
	if f := s.takeEndpointFault(EndpointBillDownload); f != nil {
		if f.DelayMS > 0 && !s.waitRequest(r.Context(), time.Duration(f.DelayMS)*time.Millisecond) {
			return
		}
		if f.Status != 0 {
			rep := f.reply()
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(rep.status)
			_, _ = w.Write(rep.body)
			return
		}
	}
	// The token first: an expired URL is an expired URL, however the
	// request is signed.
	s.mu.Lock()
	d := s.bills.downloads[r.URL.Query().Get("token")]
	expired := d != nil && s.now().After(d.expires)
	s.mu.Unlock()
	if d == nil || expired {
		unsigned(http.StatusBadRequest, "INVALID_REQUEST", "下载地址已失效，请重新申请账单")
		return
	}
	if rep, ok := s.verifyRequest(r, nil); !ok {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(rep.status)
		_, _ = w.Write(rep.body)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(d.gz)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(d.gz)
}

func (s *Sim) takeBillFaultLocked() string {
	f := &s.bills.faults
	if f.Corrupt == "" || f.Count == 0 {
		return ""
	}
	kind := f.Corrupt
	if f.Count > 0 {
		f.Count--
		if f.Count == 0 {
			f.Corrupt = ""
		}
	}
	return kind
}

func flipHex(h string) string {
	if h == "" {
		return "0"
	}
	last := h[len(h)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return h[:len(h)-1] + string(repl)
}

// ---- the file ----

// billEntry is one row: a payment, or a refund of one.
type billEntry struct {
	at                                           time.Time
	refund                                       bool
	appID, mchID, txID, outTradeNo, openID, desc string
	attach                                       string
	total                                        int64
	refundID, outRefundNo, refundStatus          string
	refundFen                                    int64
}

// billEntriesLocked are the day's rows from the records: payments by their
// success time, refunds by when they were requested (a refund's row is
// written then, with the status it has when the bill is made, and never
// updated). Oldest first.
func (s *Sim) billEntriesLocked(day time.Time) []billEntry {
	end := day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(day) && t.Before(end) }
	now := s.now()
	var out []billEntry
	for _, t := range s.txs {
		if t.transactionID == "" {
			continue
		}
		base := billEntry{appID: t.appID, mchID: t.mchID, txID: t.transactionID, outTradeNo: t.outTradeNo,
			openID: t.openID, desc: t.description, attach: t.attach, total: t.total}
		if in(t.successTime) {
			e := base
			e.at = t.successTime
			out = append(out, e)
		}
		for _, r := range t.refunds {
			if !in(r.createTime) {
				continue
			}
			s.settleDueLocked(r, now)
			e := base
			e.at, e.refund = r.createTime, true
			e.refundID, e.outRefundNo, e.refundFen = r.refundID, r.outRefundNo, r.refund
			e.refundStatus = billRefundStatus(r.status)
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].at.Equal(out[j].at) {
			return out[i].at.Before(out[j].at)
		}
		return out[i].outRefundNo < out[j].outRefundNo
	})
	return out
}

// billRefundStatus is the bill's word for a refund status.
func billRefundStatus(apiStatus string) string {
	switch apiStatus {
	case RefundClosed:
		return "FAIL"
	case RefundAbnormal:
		return "CHANGE"
	}
	return apiStatus // SUCCESS, PROCESSING
}

// billFee is a row's fee in fen: the rate, rounded half up to the fen.
func billFee(fen int64) int64 { return (fen*BillFeeRateBP + 5000) / 10000 }

// billHeader is the ALL bill's header and billSummaryHeader its summary's,
// as WeChat writes them (no backquotes on header lines).
const (
	billHeader        = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
	billSummaryHeader = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)

// merchantText escapes a merchant's own text the way WeChat's bills do, so
// that the file still splits on commas: a comma becomes "\ ", a quote \",
// a line break \n.
var merchantText = strings.NewReplacer(",", `\ `, `"`, `\"`, "\r", `\r`, "\n", `\n`)

func yuan2(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}

func yuan5(fen int64) string { return yuan2(fen) + "000" } // fees are whole fen, written to 5 decimals

type billSums struct {
	rows                                     int
	settlement, refund, fee, total, reqRefnd int64
}

// writeRow writes one data row, every field behind a backquote.
func writeRow(w *bufio.Writer, e billEntry, sums *billSums, malformed bool) {
	var fields [27]string
	fields[0] = e.at.In(chinaTime).Format("2006-01-02 15:04:05")
	fields[1], fields[2], fields[3], fields[4] = e.appID, e.mchID, "0", ""
	fields[5], fields[6], fields[7], fields[8] = e.txID, e.outTradeNo, e.openID, "JSAPI"
	fields[10], fields[11] = "OTHERS", "CNY"
	fields[13] = "0.00" // 代金券金额: no coupons
	fields[17] = "0.00" // 充值券退款金额
	fields[20], fields[21] = merchantText.Replace(e.desc), merchantText.Replace(e.attach)
	fields[23] = fmt.Sprintf("%d.%02d%%", BillFeeRateBP/100, BillFeeRateBP%100)
	if !e.refund {
		fee := billFee(e.total)
		fields[9] = "SUCCESS"
		fields[12] = yuan2(e.total)
		fields[14], fields[15], fields[16] = "0", "0", "0.00"
		fields[22] = yuan5(fee)
		fields[24], fields[25] = yuan2(e.total), "0.00"
		sums.settlement += e.total
		sums.total += e.total
		sums.fee += fee
	} else {
		fee := -billFee(e.refundFen)
		fields[9] = "REFUND"
		fields[12] = "0.00"
		fields[14], fields[15], fields[16] = e.refundID, e.outRefundNo, yuan2(e.refundFen)
		fields[18], fields[19] = "ORIGINAL", e.refundStatus
		fields[22] = yuan5(fee)
		fields[24], fields[25] = "0.00", yuan2(e.refundFen)
		sums.refund += e.refundFen
		sums.reqRefnd += e.refundFen
		sums.fee += fee
	}
	if malformed {
		fields[24] = "1x.00"
		fields[25] = "1x.00"
	}
	sums.rows++
	for i, f := range fields {
		if i > 0 {
			_ = w.WriteByte(',')
		}
		_ = w.WriteByte('`')
		_, _ = w.WriteString(f)
	}
	_ = w.WriteByte('\n')
}

// makeBill writes the bill — the records' rows, then a synthetic day's —
// through gzip, hashing the bill itself on the way.
func makeBill(entries []billEntry, synth *SyntheticDay, appID, mchID, corrupt string) (*billFile, error) {
	var gzBuf bytes.Buffer
	gz := gzip.NewWriter(&gzBuf)
	h := sha1.New()
	counted := &countingWriter{w: io.MultiWriter(gz, h)}
	w := bufio.NewWriterSize(counted, 64<<10)
	var sums billSums
	// Merchants' files begin with a UTF-8 byte-order mark (see PAYSIM.md).
	_, _ = w.WriteString("\ufeff" + billHeader + "\n")
	first := corrupt == BillMalformedRow
	for _, e := range entries {
		writeRow(w, e, &sums, first)
		first = false
	}
	if synth != nil {
		err := synth.each(appID, mchID, func(e billEntry) error {
			writeRow(w, e, &sums, first)
			first = false
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	total := sums.total
	if corrupt == BillBadSummary {
		total++
	}
	_, _ = w.WriteString(billSummaryHeader + "\n")
	fmt.Fprintf(w, "`%d,`%s,`%s,`0.00,`%s,`%s,`%s\n", sums.rows, yuan2(sums.settlement), yuan2(sums.refund),
		yuan5(sums.fee), yuan2(total), yuan2(sums.reqRefnd))
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return &billFile{gz: gzBuf.Bytes(), sha1: hex.EncodeToString(h.Sum(nil)), rows: sums.rows, rawSize: counted.n}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// BillCSV returns the bill of date as the merchant reads it once
// decompressed (GET /sim/bills/{date}), from the records and any synthetic
// day, whatever the hour: for people and tests, not the API.
func (s *Sim) BillCSV(date string) ([]byte, error) {
	day, err := dayStart(date)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	entries := s.billEntriesLocked(day)
	var synth *SyntheticDay
	if sd, ok := s.bills.synthetic[date]; ok {
		synth = &sd
	}
	s.mu.Unlock()
	f, err := makeBill(entries, synth, s.opts.AppID, s.opts.MchID, "")
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(f.gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// ---- control: drift as WeChat sees it, and generated days ----

// MerchantRefundInput is a refund a person makes by hand in the merchant
// platform (商户平台): not through the API, so the shop did not ask for it.
type MerchantRefundInput struct {
	OutTradeNo    string `json:"out_trade_no,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
	// RefundFen defaults to everything still refundable.
	RefundFen int64 `json:"refund_fen,omitempty"`
	// OutRefundNo defaults to one the platform makes up ("MP…").
	OutRefundNo string `json:"out_refund_no,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

// MerchantRefund makes a refund as a person does in the merchant platform.
// It settles like any refund but sends no notify (it was asked for
// outside the API, with no notify_url; WeChat's behaviour here is not
// documented, so the simulator takes the quiet side).
func (s *Sim) MerchantRefund(in MerchantRefundInput) (RefundView, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t *txn
	switch {
	case in.TransactionID != "":
		t = s.byTxID[in.TransactionID]
	case in.OutTradeNo != "":
		t = s.txs[in.OutTradeNo]
	default:
		return RefundView{}, fmt.Errorf("%w: out_trade_no or transaction_id is required", ErrInvalid)
	}
	if t == nil {
		return RefundView{}, fmt.Errorf("%w: no such payment", ErrNotFound)
	}
	now := s.now()
	if t.state != StateSuccess && t.state != StateRefund {
		return RefundView{}, fmt.Errorf("%w: order %s is %s, not paid", ErrConflict, t.outTradeNo, t.state)
	}
	left := refundableLocked(t)
	amount := in.RefundFen
	if amount == 0 {
		amount = left
	}
	if amount <= 0 || amount > left {
		return RefundView{}, fmt.Errorf("%w: refund %d fen: %d fen refundable", ErrConflict, amount, left)
	}
	no := in.OutRefundNo
	if no == "" {
		no = "MP" + now.In(chinaTime).Format("20060102150405") + randDigits(6)
	}
	if len(no) > 64 || s.refunds[no] != nil {
		return RefundView{}, fmt.Errorf("%w: out_refund_no %q is taken or too long", ErrConflict, no)
	}
	r := &refundRec{
		tx: t, outRefundNo: no, refundID: newRefundID(now), reason: in.Reason,
		refund: amount, total: t.total, status: RefundProcessing, createTime: now,
		forceStatus: s.takeRefundFault(), quiet: true,
	}
	s.acceptRefundLocked(r, now, fmt.Sprintf("refund %s of %d fen made by hand in the merchant platform (no notify)", no, amount))
	return s.refundViewLocked(r), nil
}

// ExternalPaymentInput is a payment under an order number the shop never
// issued: another system on the same merchant, or a person's mistake.
type ExternalPaymentInput struct {
	OutTradeNo  string `json:"out_trade_no"`
	TotalFen    int64  `json:"total_fen"`
	Description string `json:"description,omitempty"`
	// NotifyURL, when set, gets the payment notify; by default there is
	// none (the other system's notify goes elsewhere).
	NotifyURL string `json:"notify_url,omitempty"`
}

// ExternalPayment records a paid transaction the shop never asked for.
func (s *Sim) ExternalPayment(in ExternalPaymentInput) (TransactionView, error) {
	switch {
	case !validOutTradeNo(in.OutTradeNo):
		return TransactionView{}, fmt.Errorf("%w: out_trade_no must be 6-32 of [0-9A-Za-z_-|*]", ErrInvalid)
	case in.TotalFen <= 0:
		return TransactionView{}, fmt.Errorf("%w: total_fen must be > 0", ErrInvalid)
	case in.NotifyURL != "" && !validNotifyURL(in.NotifyURL):
		return TransactionView{}, fmt.Errorf("%w: notify_url must be an absolute URL without a query", ErrInvalid)
	}
	desc := in.Description
	if desc == "" {
		desc = "Payment outside the shop"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.txs[in.OutTradeNo] != nil {
		return TransactionView{}, fmt.Errorf("%w: out_trade_no %s exists", ErrConflict, in.OutTradeNo)
	}
	now := s.now()
	t := &txn{
		appID: s.opts.AppID, mchID: s.opts.MchID, outTradeNo: in.OutTradeNo, description: desc,
		notifyURL: in.NotifyURL, openID: "o" + randString(27), total: in.TotalFen,
		prepayID: newPrepayID(now), state: StateNotPay, createdAt: now,
	}
	s.txs[t.outTradeNo] = t
	if in.NotifyURL != "" {
		s.payLocked(t, now, "outside the shop")
		return s.viewLocked(t), nil
	}
	t.state, t.stateDesc = StateSuccess, "支付成功"
	t.transactionID, t.successTime = newTransactionID(now), now
	s.byTxID[t.transactionID] = t
	t.event(now, "paid outside the shop (no notify), transaction_id %s", t.transactionID)
	s.log.Info("paysim: external payment", "out_trade_no", t.outTradeNo, "transaction_id", t.transactionID)
	return s.viewLocked(t), nil
}

// SyntheticDay is a day of generated trades added to the bill of Date —
// for benchmarks, which need a large day without placing every order.
// Each lists the same trades, so the shop's side can be made to match.
type SyntheticDay struct {
	Date     string `json:"date"`
	Payments int    `json:"payments"`
	// Refunds: the first Refunds payments are refunded in full with the
	// shop's out_refund_no (<out_trade_no>-R1), a minute later the same day.
	Refunds int `json:"refunds"`
	// HandRefunds: the next HandRefunds payments are refunded in full by
	// hand in the merchant platform (out_refund_no MP…): drift.
	HandRefunds int    `json:"hand_refunds"`
	Seed        uint64 `json:"seed"`
}

// SyntheticTrade is one generated payment and its refund, if any.
type SyntheticTrade struct {
	OutTradeNo, TransactionID, OpenID string
	TotalFen                          int64
	PaidAt                            time.Time
	OutRefundNo, RefundID             string // "" when not refunded
	RefundedAt                        time.Time
	HandRefund                        bool // refunded by hand, outside the shop
}

func (d SyntheticDay) validate() error {
	if _, err := dayStart(d.Date); err != nil {
		return err
	}
	switch {
	case d.Payments <= 0 || d.Payments > maxSyntheticTrades:
		return fmt.Errorf("%w: payments must be 1..%d", ErrInvalid, maxSyntheticTrades)
	case d.Refunds < 0 || d.HandRefunds < 0 || d.Refunds+d.HandRefunds > d.Payments:
		return fmt.Errorf("%w: refunds and hand_refunds must be >= 0 and add up to at most payments", ErrInvalid)
	}
	return nil
}

// Each calls fn with every trade of the day, in order.
func (d SyntheticDay) Each(fn func(SyntheticTrade) error) error {
	day, err := dayStart(d.Date)
	if err != nil {
		return err
	}
	compact := day.Format("20060102")
	rng := rand.New(rand.NewPCG(d.Seed, 0x5eed))
	last := day.AddDate(0, 0, 1).Add(-time.Second)
	for i := range d.Payments {
		t := SyntheticTrade{
			OutTradeNo:    fmt.Sprintf("SY%s%08d", compact, i),
			TransactionID: fmt.Sprintf("4200999999%s%010d", compact, i),
			OpenID:        fmt.Sprintf("osynthetic%018d", rng.Uint64()%1e18),
			TotalFen:      100 + rng.Int64N(49_900),
			PaidAt:        day.Add(time.Duration(int64(i)*86_399/int64(d.Payments)) * time.Second),
		}
		if i < d.Refunds+d.HandRefunds {
			t.RefundID = fmt.Sprintf("50999999999%s%010d", compact, i)
			t.RefundedAt = t.PaidAt.Add(time.Minute)
			if t.RefundedAt.After(last) {
				t.RefundedAt = last
			}
			t.OutRefundNo = t.OutTradeNo + "-R1"
			if i >= d.Refunds {
				t.HandRefund = true
				t.OutRefundNo = fmt.Sprintf("MP%s%08d", compact, i)
			}
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// each lists the day's bill rows: every payment, and each refund right
// after it (the bill is not sorted across them; no merchant relies on it).
func (d SyntheticDay) each(appID, mchID string, fn func(billEntry) error) error {
	return d.Each(func(t SyntheticTrade) error {
		e := billEntry{at: t.PaidAt, appID: appID, mchID: mchID, txID: t.TransactionID,
			outTradeNo: t.OutTradeNo, openID: t.OpenID, desc: "Synthetic trade", total: t.TotalFen}
		if err := fn(e); err != nil {
			return err
		}
		if t.OutRefundNo == "" {
			return nil
		}
		e.at, e.refund = t.RefundedAt, true
		e.refundID, e.outRefundNo, e.refundFen, e.refundStatus = t.RefundID, t.OutRefundNo, t.TotalFen, RefundSuccess
		return fn(e)
	})
}

// AddSyntheticDay adds (or replaces) the generated trades of a day.
func (s *Sim) AddSyntheticDay(d SyntheticDay) error {
	if err := d.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bills.synthetic[d.Date] = d
	delete(s.bills.frozen, d.Date)
	return nil
}

// registerBillRoutes adds the bill endpoints and their control calls.
func (s *Sim) registerBillRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v3/bill/tradebill", s.v3(EndpointTradeBill, s.handleTradeBill))
	mux.HandleFunc("GET /v3/billdownload/file", s.handleBillDownload)

	mux.HandleFunc("POST /sim/refunds", func(w http.ResponseWriter, r *http.Request) {
		var in MerchantRefundInput
		if !readJSON(w, r, &in) {
			return
		}
		v, err := s.MerchantRefund(in)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /sim/payments", func(w http.ResponseWriter, r *http.Request) {
		var in ExternalPaymentInput
		if !readJSON(w, r, &in) {
			return
		}
		v, err := s.ExternalPayment(in)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("GET /sim/bills/{date}", func(w http.ResponseWriter, r *http.Request) {
		b, err := s.BillCSV(r.PathValue("date"))
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("POST /sim/bills/{date}/synthetic", func(w http.ResponseWriter, r *http.Request) {
		var in SyntheticDay
		if !readJSON(w, r, &in) {
			return
		}
		in.Date = r.PathValue("date")
		if err := s.AddSyntheticDay(in); err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, in)
	})
}
