// Package tradebill reads WeChat Pay's trade bill (交易账单, bill_type=ALL) as
// it comes from the download: a gzip stream whose SHA-1 (of the bill itself,
// not of the gzip) was given with the download URL, holding CSV text — a
// header, one row per payment and per refund, a summary header and one
// summary row. Every field of a data row starts with a backquote (so that
// spreadsheets keep long numbers), amounts are yuan with two decimals and
// fees yuan with five.
//
// It reads the stream row by row and never holds the bill: a day of a
// million rows costs the memory of one. Amounts become integers (fen; fees
// thousandths of a fen) without a float on the way, and the summary row is
// checked against the sums of the rows before the reader says the bill
// ended. Anything that does not fit — a missing column, a row of the wrong
// width, an amount that is not one, a summary that does not add up — is an
// error naming the line.
//
// The format is WeChat's as documented (pay.weixin.qq.com/doc/v3/merchant,
// 交易账单 field list) and as merchants' real files show it; docs/PAYSIM.md
// says what the simulator writes and where each choice comes from.
package tradebill

import (
	"compress/gzip"
	"crypto/sha1"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
)

// Trade states (交易状态) of the detail rows.
const (
	StateSuccess = "SUCCESS" // a payment
	StateRefund  = "REFUND"  // a refund, written when it was requested
	StateRevoked = "REVOKED" // a revoked payment-code payment (not used by mini-programs)
)

// Refund statuses (退款状态) as the bill writes them; they are not the refund
// API's (which says CLOSED and ABNORMAL).
const (
	RefundSuccess    = "SUCCESS"
	RefundProcessing = "PROCESSING"
	RefundFail       = "FAIL"   // the API's CLOSED
	RefundChange     = "CHANGE" // the API's ABNORMAL: the refund needs a person
)

// Column names of the ALL bill (the header text WeChat writes), in WeChat's
// order. The reader finds columns by name, so an added column does not
// break it; a missing one does.
const (
	ColTime                = "交易时间"
	ColAppID               = "公众账号ID"
	ColMchID               = "商户号"
	ColSubMchID            = "特约商户号"
	ColDevice              = "设备号"
	ColTransactionID       = "微信订单号"
	ColOutTradeNo          = "商户订单号"
	ColOpenID              = "用户标识"
	ColTradeType           = "交易类型"
	ColTradeState          = "交易状态"
	ColBank                = "付款银行"
	ColCurrency            = "货币种类"
	ColSettlement          = "应结订单金额"
	ColCoupon              = "代金券金额"
	ColRefundID            = "微信退款单号"
	ColOutRefundNo         = "商户退款单号"
	ColRefund              = "退款金额"
	ColRechargeRefund      = "充值券退款金额"
	ColRefundType          = "退款类型"
	ColRefundStatus        = "退款状态"
	ColDescription         = "商品名称"
	ColAttach              = "商户数据包"
	ColFee                 = "手续费"
	ColFeeRate             = "费率"
	ColTotal               = "订单金额"
	ColRequestedRefund     = "申请退款金额"
	ColFeeRateNote         = "费率备注"
	SumRows                = "总交易单数"
	SumSettlement          = "应结订单总金额"
	SumRefund              = "退款总金额"
	SumRechargeRefund      = "充值券退款总金额"
	SumFee                 = "手续费总金额"
	SumTotal               = "订单总金额"
	SumRequestedRefund     = "申请退款总金额"
	billTimeLayout         = "2006-01-02 15:04:05"
	maxAmountIntegerDigits = 13 // ¥9,999,999,999,999: far above any day, far below int64 overflow
)

// Columns is the header of the ALL bill, in WeChat's order.
var Columns = []string{
	ColTime, ColAppID, ColMchID, ColSubMchID, ColDevice, ColTransactionID, ColOutTradeNo, ColOpenID,
	ColTradeType, ColTradeState, ColBank, ColCurrency, ColSettlement, ColCoupon, ColRefundID,
	ColOutRefundNo, ColRefund, ColRechargeRefund, ColRefundType, ColRefundStatus, ColDescription,
	ColAttach, ColFee, ColFeeRate, ColTotal, ColRequestedRefund, ColFeeRateNote,
}

// SummaryColumns is the header of the summary row.
var SummaryColumns = []string{SumRows, SumSettlement, SumRefund, SumRechargeRefund, SumFee, SumTotal, SumRequestedRefund}

// chinaTime is Beijing time (no daylight saving), the bill's clock.
var chinaTime = time.FixedZone("CST", 8*3600)

// Row is one detail row. Money is fen, fees thousandths of a fen (the bill
// gives them in yuan to five decimals).
type Row struct {
	Line          int       // line of the file (1 is the header)
	Time          time.Time // 交易时间: the payment's success time, or when the refund was requested
	AppID         string
	MchID         string
	TransactionID string
	OutTradeNo    string
	OpenID        string
	TradeType     string
	TradeState    string // StateSuccess, StateRefund, StateRevoked
	Currency      string
	// SettlementFen is 应结订单金额: the order amount minus coupons WeChat
	// does not settle (0 on refund rows).
	SettlementFen int64
	CouponFen     int64
	RefundID      string // "" on payment rows (the bill writes 0)
	OutRefundNo   string // "" on payment rows (the bill writes 0)
	RefundFen     int64  // 退款金额 (0 on payment rows)
	// RechargeRefundFen is 充值券退款金额.
	RechargeRefundFen int64
	RefundType        string
	RefundStatus      string // RefundSuccess, RefundProcessing, RefundFail, RefundChange ("" on payment rows)
	Description       string // as written: WeChat escapes , and " in merchant text
	FeeMilliFen       int64  // 手续费; negative on refund rows (the fee comes back)
	FeeRate           string
	TotalFen          int64 // 订单金额 (0 on refund rows)
	// RequestedRefundFen is 申请退款金额 (0 on payment rows).
	RequestedRefundFen int64
}

// Summary is the summary row, or the sums of the detail rows.
type Summary struct {
	Rows               int64
	SettlementFen      int64
	RefundFen          int64
	RechargeRefundFen  int64
	FeeMilliFen        int64
	TotalFen           int64
	RequestedRefundFen int64
}

func (s *Summary) add(r Row) {
	s.Rows++
	s.SettlementFen += r.SettlementFen
	s.RefundFen += r.RefundFen
	s.RechargeRefundFen += r.RechargeRefundFen
	s.FeeMilliFen += r.FeeMilliFen
	s.TotalFen += r.TotalFen
	s.RequestedRefundFen += r.RequestedRefundFen
}

// Error is a bill that is not well formed; Line is 0 when it is about the
// whole file.
type Error struct {
	Line   int
	Reason string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("trade bill line %d: %s", e.Line, e.Reason)
	}
	return "trade bill: " + e.Reason
}

func lineErr(line int, format string, args ...any) error {
	return &Error{Line: line, Reason: fmt.Sprintf(format, args...)}
}

// ErrMalformed is in the chain of every error about the bill's content (an
// *Error, or a summary that does not add up).
var ErrMalformed = errors.New("malformed trade bill")

func (e *Error) Unwrap() error { return ErrMalformed }

// Reader reads the detail rows of a bill one by one.
type Reader struct {
	csv     *csv.Reader
	col     map[string]int
	width   int
	line    int
	sums    Summary
	summary *Summary
	err     error
}

// NewReader reads the header from r and returns a reader of the rows. An
// optional UTF-8 byte-order mark before the header is skipped.
func NewReader(r io.Reader) (*Reader, error) {
	c := csv.NewReader(r)
	c.FieldsPerRecord = -1 // the summary is narrower than the rows: checked here
	c.LazyQuotes = true    // WeChat writes \" inside merchant text, never CSV quoting
	c.ReuseRecord = true   // one row's memory for the whole bill
	br := &Reader{csv: c, col: map[string]int{}}
	header, err := br.read()
	if err == io.EOF {
		return nil, &Error{Reason: "the file is empty (no header)"}
	}
	if err != nil {
		return nil, err
	}
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	for i, name := range header {
		name = strings.TrimSpace(name)
		if _, dup := br.col[name]; dup {
			return nil, lineErr(br.line, "column %q appears twice in the header", name)
		}
		br.col[name] = i
	}
	for _, name := range Columns {
		if _, ok := br.col[name]; !ok && name != ColFeeRateNote && name != ColSubMchID && name != ColDevice {
			return nil, lineErr(br.line, "the header has no column %q: not an ALL trade bill (header %q)", name, strings.Join(header, ","))
		}
	}
	br.width = len(header)
	return br, nil
}

func (br *Reader) read() ([]string, error) {
	rec, err := br.csv.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, lineErr(pe.Line, "not CSV: %v", pe.Err)
		}
		// A read error of the stream below (a truncated or corrupt gzip):
		// not a malformed bill but a broken download.
		return nil, fmt.Errorf("read trade bill after line %d: %w", br.line, err)
	}
	br.line, _ = br.csv.FieldPos(0)
	return rec, nil
}

// Next returns the next detail row. After the last one it reads the summary,
// checks it against the rows and returns io.EOF; any other error means the
// bill cannot be trusted (none of its rows should be).
func (br *Reader) Next() (Row, error) {
	if br.err != nil {
		return Row{}, br.err
	}
	row, err := br.next()
	if err != nil {
		br.err = err
	}
	return row, err
}

func (br *Reader) next() (Row, error) {
	if br.summary != nil {
		return Row{}, io.EOF
	}
	rec, err := br.read()
	if err == io.EOF {
		return Row{}, &Error{Reason: fmt.Sprintf("the file ends after line %d without its summary (总交易单数…): truncated?", br.line)}
	}
	if err != nil {
		return Row{}, err
	}
	if strings.TrimSpace(rec[0]) == SumRows {
		return Row{}, br.readSummary(rec)
	}
	if len(rec) != br.width {
		return Row{}, lineErr(br.line, "%d fields where the header has %d", len(rec), br.width)
	}
	row, err := br.parseRow(rec)
	if err != nil {
		return Row{}, err
	}
	br.sums.add(row)
	return row, nil
}

// field returns the named column of rec without its backquote; a data field
// without one is not WeChat's.
func (br *Reader) field(rec []string, name string) (string, error) {
	i, ok := br.col[name]
	if !ok {
		return "", nil // an optional column this bill does not have
	}
	v := rec[i]
	if !strings.HasPrefix(v, "`") {
		return "", lineErr(br.line, "column %s is %q: every field of a data row starts with a backquote", name, v)
	}
	return v[1:], nil
}

func (br *Reader) parseRow(rec []string) (Row, error) {
	r := Row{Line: br.line}
	var err error
	text := func(name string, dst *string) {
		if err == nil {
			*dst, err = br.field(rec, name)
		}
	}
	fen := func(name string, dst *int64) {
		if err != nil {
			return
		}
		var s string
		if s, err = br.field(rec, name); err == nil {
			if *dst, err = ParseYuan(s, 2); err != nil {
				err = lineErr(br.line, "column %s: %v", name, err)
			}
		}
	}
	var when string
	text(ColTime, &when)
	text(ColAppID, &r.AppID)
	text(ColMchID, &r.MchID)
	text(ColTransactionID, &r.TransactionID)
	text(ColOutTradeNo, &r.OutTradeNo)
	text(ColOpenID, &r.OpenID)
	text(ColTradeType, &r.TradeType)
	text(ColTradeState, &r.TradeState)
	text(ColCurrency, &r.Currency)
	fen(ColSettlement, &r.SettlementFen)
	fen(ColCoupon, &r.CouponFen)
	text(ColRefundID, &r.RefundID)
	text(ColOutRefundNo, &r.OutRefundNo)
	fen(ColRefund, &r.RefundFen)
	fen(ColRechargeRefund, &r.RechargeRefundFen)
	text(ColRefundType, &r.RefundType)
	text(ColRefundStatus, &r.RefundStatus)
	text(ColDescription, &r.Description)
	text(ColFeeRate, &r.FeeRate)
	fen(ColTotal, &r.TotalFen)
	fen(ColRequestedRefund, &r.RequestedRefundFen)
	if err == nil {
		var s string
		if s, err = br.field(rec, ColFee); err == nil {
			if r.FeeMilliFen, err = ParseYuan(s, 5); err != nil {
				err = lineErr(br.line, "column %s: %v", ColFee, err)
			}
		}
	}
	if err != nil {
		return Row{}, err
	}
	// Copy the strings out of the reused record (csv reuses the backing
	// array of the slice, not the strings, but the row outlives the call).
	r.Time, err = time.ParseInLocation(billTimeLayout, strings.TrimSpace(when), chinaTime)
	if err != nil {
		return Row{}, lineErr(br.line, "column %s is %q, not yyyy-MM-dd HH:mm:ss", ColTime, when)
	}
	if r.RefundID == "0" {
		r.RefundID = ""
	}
	if r.OutRefundNo == "0" {
		r.OutRefundNo = ""
	}
	switch {
	case r.TransactionID == "" || r.OutTradeNo == "":
		return Row{}, lineErr(br.line, "a row without %s or %s", ColTransactionID, ColOutTradeNo)
	case r.Currency != "" && r.Currency != "CNY":
		return Row{}, lineErr(br.line, "currency %q: only CNY is expected", r.Currency)
	}
	switch r.TradeState {
	case StateSuccess, StateRevoked:
		if r.TotalFen <= 0 {
			return Row{}, lineErr(br.line, "a payment of %s", FormatFen(r.TotalFen))
		}
	case StateRefund:
		if r.OutRefundNo == "" || r.RefundID == "" {
			return Row{}, lineErr(br.line, "a refund row without %s or %s", ColOutRefundNo, ColRefundID)
		}
		if r.RequestedRefundFen <= 0 || r.RefundFen < 0 || r.RefundFen > r.RequestedRefundFen {
			return Row{}, lineErr(br.line, "a refund of %s (requested %s)", FormatFen(r.RefundFen), FormatFen(r.RequestedRefundFen))
		}
		switch r.RefundStatus {
		case RefundSuccess, RefundProcessing, RefundFail, RefundChange:
		default:
			return Row{}, lineErr(br.line, "refund status %q (want SUCCESS, PROCESSING, FAIL or CHANGE)", r.RefundStatus)
		}
	default:
		return Row{}, lineErr(br.line, "trade state %q (want SUCCESS, REFUND or REVOKED)", r.TradeState)
	}
	return r, nil
}

func (br *Reader) readSummary(header []string) error {
	headerLine := br.line
	if len(header) < len(SummaryColumns) {
		return lineErr(headerLine, "summary header has %d columns, want %d", len(header), len(SummaryColumns))
	}
	for i, name := range SummaryColumns {
		if strings.TrimSpace(header[i]) != name {
			return lineErr(headerLine, "summary column %d is %q, want %q", i+1, header[i], name)
		}
	}
	width := len(header)
	rec, err := br.read()
	if err == io.EOF {
		return lineErr(headerLine, "the summary header is the last line: the summary row is missing (truncated?)")
	}
	if err != nil {
		return err
	}
	if len(rec) != width {
		return lineErr(br.line, "summary row has %d fields, its header %d", len(rec), width)
	}
	rowLine := br.line
	var got Summary
	fields := []*int64{&got.Rows, &got.SettlementFen, &got.RefundFen, &got.RechargeRefundFen, &got.FeeMilliFen, &got.TotalFen, &got.RequestedRefundFen}
	for i, dst := range fields {
		v := rec[i]
		if !strings.HasPrefix(v, "`") {
			return lineErr(br.line, "summary column %s is %q: it starts with a backquote", SummaryColumns[i], v)
		}
		v = v[1:]
		switch {
		case i == 0:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return lineErr(br.line, "summary %s is %q, not a count", SumRows, v)
			}
			*dst = n
		case SummaryColumns[i] == SumFee:
			if *dst, err = ParseYuan(v, 5); err != nil {
				return lineErr(br.line, "summary %s: %v", SumFee, err)
			}
		default:
			if *dst, err = ParseYuan(v, 2); err != nil {
				return lineErr(br.line, "summary %s: %v", SummaryColumns[i], err)
			}
		}
	}
	// Nothing may follow but blank lines.
	for {
		rest, err := br.read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(rest) > 1 || strings.TrimSpace(rest[0]) != "" {
			return lineErr(br.line, "content after the summary row")
		}
	}
	if err := checkSummary(got, br.sums, rowLine); err != nil {
		return err
	}
	br.summary = &got
	return io.EOF
}

func checkSummary(got, want Summary, line int) error {
	type pair struct {
		name      string
		got, want int64
		fee       bool
	}
	for _, p := range []pair{
		{SumRows, got.Rows, want.Rows, false},
		{SumSettlement, got.SettlementFen, want.SettlementFen, false},
		{SumRefund, got.RefundFen, want.RefundFen, false},
		{SumRechargeRefund, got.RechargeRefundFen, want.RechargeRefundFen, false},
		{SumFee, got.FeeMilliFen, want.FeeMilliFen, true},
		{SumTotal, got.TotalFen, want.TotalFen, false},
		{SumRequestedRefund, got.RequestedRefundFen, want.RequestedRefundFen, false},
	} {
		if p.got == p.want {
			continue
		}
		show := FormatFen
		if p.fee {
			show = FormatMilliFen
		}
		if p.name == SumRows {
			show = func(n int64) string { return strconv.FormatInt(n, 10) }
		}
		return lineErr(line, "the summary does not add up: %s is %s, the rows sum to %s", p.name, show(p.got), show(p.want))
	}
	return nil
}

// Summary is the bill's summary row, once Next has returned io.EOF (the
// zero Summary before).
func (br *Reader) Summary() Summary {
	if br.summary == nil {
		return Summary{}
	}
	return *br.summary
}

// ParseYuan turns a decimal amount of yuan with at most decimals places
// ("12.30", "-0.27000", "0") into an integer count of 10^-decimals yuan
// (decimals 2: fen; 5: thousandths of a fen). No floats: "0.1"+"0.2" is
// exactly 30 fen.
func ParseYuan(s string, decimals int) (int64, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	switch {
	case whole == "" || len(whole) > maxAmountIntegerDigits || !digits(whole):
		return 0, fmt.Errorf("%q is not an amount of yuan", orig)
	case hasDot && (frac == "" || !digits(frac)):
		return 0, fmt.Errorf("%q is not an amount of yuan", orig)
	case len(frac) > decimals:
		return 0, fmt.Errorf("%q has more than %d decimals", orig, decimals)
	}
	frac += strings.Repeat("0", decimals-len(frac))
	n, err := strconv.ParseInt(whole+frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an amount of yuan", orig)
	}
	if neg {
		n = -n
	}
	return n, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatFen writes fen as the bill does: yuan with two decimals.
func FormatFen(fen int64) string { return formatScaled(fen, 2) }

// FormatMilliFen writes thousandths of a fen as the bill writes fees: yuan
// with five decimals.
func FormatMilliFen(mf int64) string { return formatScaled(mf, 5) }

func formatScaled(n int64, decimals int) string {
	sign := ""
	u := uint64(n)
	if n < 0 {
		sign, u = "-", uint64(-n)
	}
	s := strconv.FormatUint(u, 10)
	if len(s) <= decimals {
		s = strings.Repeat("0", decimals-len(s)+1) + s
	}
	return sign + s[:len(s)-decimals] + "." + s[len(s)-decimals:]
}

// Download is a bill download being read: it undoes the gzip and hashes
// what comes out, so that the SHA-1 WeChat gave with the URL is checked
// against the bill itself without keeping it. Read it to the end (a Reader
// does), then call Verify.
type Download struct {
	gz   *gzip.Reader
	sha  hash.Hash
	want string
	r    io.Reader
	n    int64
}

// OpenGzip starts reading a GZIP download whose bill has SHA-1 sha1Hex.
func OpenGzip(body io.Reader, sha1Hex string) (*Download, error) {
	want := strings.ToLower(strings.TrimSpace(sha1Hex))
	if b, err := hex.DecodeString(want); err != nil || len(b) != sha1.Size {
		return nil, fmt.Errorf("%w: hash_value %q is not a SHA-1", ErrBadDownload, sha1Hex)
	}
	gz, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("%w: not a gzip stream: %v", ErrBadDownload, err)
	}
	d := &Download{gz: gz, sha: sha1.New(), want: want}
	d.r = io.TeeReader(gz, d.sha)
	return d, nil
}

// ErrBadDownload is in the chain of a download that is not the bill WeChat
// described: not gzip, cut short, or another SHA-1.
var ErrBadDownload = errors.New("bad trade bill download")

func (d *Download) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.n += int64(n)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrBadDownload, err)
	}
	return n, err
}

// Size is how many bytes of bill (uncompressed) were read.
func (d *Download) Size() int64 { return d.n }

// Verify reads whatever is left (the gzip trailer with its checksum comes
// last) and compares the SHA-1 of the whole bill with the one WeChat gave.
func (d *Download) Verify() error {
	if _, err := io.Copy(io.Discard, d); err != nil {
		return err
	}
	if err := d.gz.Close(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadDownload, err)
	}
	got := hex.EncodeToString(d.sha.Sum(nil))
	if got != d.want {
		return fmt.Errorf("%w: the bill's SHA-1 is %s, WeChat's hash_value %s", ErrBadDownload, got, d.want)
	}
	return nil
}
