package tradebill_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"ordersaga/internal/tradebill"
)

func fixture(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/tradebill-all.csv")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// readAll reads a bill to its end.
func readAll(r io.Reader) ([]tradebill.Row, tradebill.Summary, error) {
	rd, err := tradebill.NewReader(r)
	if err != nil {
		return nil, tradebill.Summary{}, err
	}
	var rows []tradebill.Row
	for {
		row, err := rd.Next()
		if err == io.EOF {
			return rows, rd.Summary(), nil
		}
		if err != nil {
			return rows, tradebill.Summary{}, err
		}
		rows = append(rows, row)
	}
}

func TestReaderReadsEveryRowOfAWellFormedBill(t *testing.T) {
	rows, sum, err := readAll(strings.NewReader(fixture(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows, want 3", len(rows))
	}
	beijing := time.FixedZone("CST", 8*3600)
	pay, refund, late := rows[0], rows[1], rows[2]
	if pay.TradeState != tradebill.StateSuccess || pay.TotalFen != 17600 || pay.SettlementFen != 17600 ||
		pay.FeeMilliFen != 106000 || pay.OutRefundNo != "" || pay.RefundID != "" || pay.RequestedRefundFen != 0 ||
		pay.TransactionID != "4200000123202612051234567890" || pay.OutTradeNo != "20261205091145123456" ||
		!pay.Time.Equal(time.Date(2026, 12, 5, 9, 12, 3, 0, beijing)) || pay.Line != 2 {
		t.Errorf("payment row = %+v", pay)
	}
	if refund.TradeState != tradebill.StateRefund || refund.RequestedRefundFen != 17600 || refund.RefundFen != 17600 ||
		refund.TotalFen != 0 || refund.FeeMilliFen != -106000 || refund.OutRefundNo != "20261205091145123456-R1" ||
		refund.RefundID != "50300000012026120512345678901" || refund.RefundStatus != tradebill.RefundSuccess {
		t.Errorf("refund row = %+v", refund)
	}
	// A payment at 23:59:59 Beijing time is 15:59:59 UTC: still this day.
	if !late.Time.Equal(time.Date(2026, 12, 5, 15, 59, 59, 0, time.UTC)) || late.TotalFen != 1 ||
		late.Description != `Limited edition mug\ blue` {
		t.Errorf("late row = %+v", late)
	}
	want := tradebill.Summary{Rows: 3, SettlementFen: 17601, RefundFen: 17600, TotalFen: 17601, RequestedRefundFen: 17600}
	if sum != want {
		t.Errorf("summary = %+v, want %+v", sum, want)
	}
}

func TestReaderRefusesABillThatIsNotWellFormed(t *testing.T) {
	good := fixture(t)
	lines := strings.Split(strings.TrimSuffix(good, "\n"), "\n")
	with := func(i int, line string) string {
		l := append([]string(nil), lines...)
		l[i] = line
		return strings.Join(l, "\n") + "\n"
	}
	field := func(line, from, to string) string { return strings.Replace(line, from, to, 1) }
	cases := []struct {
		name, bill, want string
	}{
		{"empty file", "", "empty"},
		{"header lacks a column", with(0, strings.Replace(lines[0], ",订单金额", "", 1)), `no column "订单金额"`},
		{"header names a column twice", with(0, lines[0]+",费率"), "twice"},
		{"row one field short", with(1, lines[1][:strings.LastIndex(lines[1], ",")]), "26 fields where the header has 27"},
		{"field without its backquote", with(1, field(lines[1], "`176.00,`0.00,`0,", "176.00,`0.00,`0,")), "backquote"},
		{"amount that is not a number", with(1, field(lines[1], "`176.00,`0.00,`0,", "`17x.00,`0.00,`0,")), "not an amount"},
		{"amount with three decimals", with(1, field(lines[1], "`176.00,`0.00,`0,", "`176.001,`0.00,`0,")), "more than 2 decimals"},
		{"amount through a float", with(1, field(lines[1], "`176.00,`0.00,`0,", "`1.76e2,`0.00,`0,")), "not an amount"},
		{"unknown trade state", with(1, field(lines[1], "`SUCCESS", "`PAID")), `trade state "PAID"`},
		{"refund without its number", with(2, field(lines[2], "`20261205091145123456-R1", "`0")), "without 商户退款单号"},
		{"refund of an unknown status", with(2, field(lines[2], "`ORIGINAL,`SUCCESS", "`ORIGINAL,`DONE")), `refund status "DONE"`},
		{"time that is not one", with(1, field(lines[1], "`2026-12-05 09:12:03", "`2026/12/05 09:12:03")), "not yyyy-MM-dd"},
		{"foreign currency", with(1, field(lines[1], "`CNY", "`USD")), `currency "USD"`},
		{"summary total off by a fen", with(5, "`3,`176.01,`176.00,`0.00,`0.00000,`176.02,`176.00"), "line 6: the summary does not add up: 订单总金额 is 176.02, the rows sum to 176.01"},
		{"summary counts another number of rows", with(5, "`4,`176.01,`176.00,`0.00,`0.00000,`176.01,`176.00"), "总交易单数 is 4, the rows sum to 3"},
		{"summary fees do not add up", with(5, "`3,`176.01,`176.00,`0.00,`0.01000,`176.01,`176.00"), "手续费总金额"},
		{"summary missing (truncated)", strings.Join(lines[:4], "\n") + "\n", "without its summary"},
		{"summary row missing", strings.Join(lines[:5], "\n") + "\n", "summary row is missing"},
		{"content after the summary", good + "`1,`2\n", "after the summary"},
		{"summary header renamed", with(4, strings.Replace(lines[4], "退款总金额", "退款金额合计", 1)), "summary column 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, _, err := readAll(strings.NewReader(c.bill))
			if err == nil {
				t.Fatalf("read %d rows and no error; want %q", len(rows), c.want)
			}
			if !errors.Is(err, tradebill.ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestParseYuanIsExactAndRefusesWhatIsNotAnAmount(t *testing.T) {
	ok := []struct {
		in       string
		decimals int
		want     int64
	}{
		{"0", 2, 0}, {"0.1", 2, 10}, {"0.10", 2, 10}, {"12.30", 2, 1230}, {"176.00", 2, 17600},
		{"-0.27000", 5, -27000}, {"4.33000", 5, 433000}, {"0.00006", 5, 6}, {"9999999999999.99", 2, 999999999999999},
	}
	for _, c := range ok {
		got, err := tradebill.ParseYuan(c.in, c.decimals)
		if err != nil || got != c.want {
			t.Errorf("ParseYuan(%q, %d) = %d, %v; want %d", c.in, c.decimals, got, err, c.want)
		}
	}
	// 0.1 + 0.2 is 0.3 exactly, as it is not in float64.
	a, _ := tradebill.ParseYuan("0.1", 2)
	b, _ := tradebill.ParseYuan("0.2", 2)
	if a+b != 30 {
		t.Errorf("0.1 + 0.2 = %d fen", a+b)
	}
	for _, in := range []string{"", " 1", "+1", "1e3", "1.234", ".5", "5.", "--1", "1,000.00", "NaN", "10000000000000.00", "0x10"} {
		if got, err := tradebill.ParseYuan(in, 2); err == nil {
			t.Errorf("ParseYuan(%q) = %d, want an error", in, got)
		}
	}
	for _, c := range []struct {
		fen  int64
		want string
	}{{0, "0.00"}, {1, "0.01"}, {17600, "176.00"}, {-106, "-1.06"}} {
		if got := tradebill.FormatFen(c.fen); got != c.want {
			t.Errorf("FormatFen(%d) = %q, want %q", c.fen, got, c.want)
		}
	}
	if got := tradebill.FormatMilliFen(-27000); got != "-0.27000" {
		t.Errorf("FormatMilliFen(-27000) = %q", got)
	}
}

func gz(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sha1Hex(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// readDownload reads a download as the reconciliation does: rows first,
// the SHA-1 at the end.
func readDownload(body []byte, hash string) error {
	dl, err := tradebill.OpenGzip(bytes.NewReader(body), hash)
	if err != nil {
		return err
	}
	if _, _, err := readAll(dl); err != nil {
		return err
	}
	return dl.Verify()
}

func TestDownloadIsCheckedAgainstTheSHA1OfTheBillItself(t *testing.T) {
	bill := fixture(t)
	file := gz(t, bill)
	if err := readDownload(file, strings.ToUpper(sha1Hex(bill))); err != nil {
		t.Fatalf("a good download: %v", err)
	}
	cases := []struct {
		name string
		body []byte
		hash string
		want string
	}{
		{"another SHA-1", file, sha1Hex(bill + " "), "SHA-1"},
		{"the SHA-1 of the gzip file, not of the bill", file, sha1Hex(string(file)), "SHA-1"},
		{"gzip cut halfway", file[:len(file)/2], sha1Hex(bill), "unexpected EOF"},
		{"gzip cut before its checksum", file[:len(file)-4], sha1Hex(bill), "unexpected EOF"},
		{"not gzip at all", []byte(bill), sha1Hex(bill), "not a gzip stream"},
		{"hash_value that is not a SHA-1", file, "abc", "not a SHA-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := readDownload(c.body, c.hash)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tradebill.ErrBadDownload) {
				t.Errorf("error %v is not ErrBadDownload", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}
