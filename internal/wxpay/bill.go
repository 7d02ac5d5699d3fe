package wxpay

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"
	"github.com/wechatpay-apiv3/wechatpay-go/core/consts"
	"github.com/wechatpay-apiv3/wechatpay-go/core/option"
	"github.com/wechatpay-apiv3/wechatpay-go/services/payments/jsapi"
)

// WeChat's answers to a bill request that are not failures of the call.
const (
	// CodeStatementCreating: the day's bill is not ready (WeChat makes it
	// from about 9:00 to 10:00 the next day): ask again later.
	CodeStatementCreating = "STATEMENT_CREATING"
	// CodeNoStatement: no payment and no refund that day: an empty bill.
	CodeNoStatement = "NO_STATEMENT_EXIST"
)

// TradeBill is WeChat's answer to a trade bill request: where to download
// the bill (a few minutes only) and the SHA-1 of the bill (of the bill
// itself, before gzip).
type TradeBill struct {
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
	DownloadURL string `json:"download_url"`
}

// billDatePattern is the only date form WeChat takes (yyyy-MM-DD).
const billDatePattern = "2006-01-02"

// TradeBillGzip asks for the trade bill of billDate (a day of Beijing time,
// yyyy-MM-DD): bill_type ALL (payments and refunds), tar_type GZIP. The
// answer is signed and verified like every API answer. A bill that is not
// ready yet or a day without trades is an *Error with Code
// CodeStatementCreating or CodeNoStatement.
func (c *Client) TradeBillGzip(ctx context.Context, billDate string) (_ TradeBill, err error) {
	const op = "tradebill"
	defer c.observe(op, time.Now(), &err)
	if _, perr := time.Parse(billDatePattern, billDate); perr != nil {
		return TradeBill{}, permanent(op, fmt.Errorf("bill_date %q is not yyyy-MM-DD", billDate))
	}
	q := url.Values{"bill_date": {billDate}, "bill_type": {"ALL"}, "tar_type": {"GZIP"}}
	result, err := c.core.Get(ctx, consts.WechatPayAPIServer+"/v3/bill/tradebill?"+q.Encode())
	if err != nil {
		return TradeBill{}, c.wrap(op, result, err)
	}
	var tb TradeBill
	if err := core.UnMarshalResponse(result.Response, &tb); err != nil {
		return TradeBill{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result), Err: err}
	}
	if !strings.EqualFold(tb.HashType, "SHA1") || tb.HashValue == "" || tb.DownloadURL == "" {
		return TradeBill{}, &Error{Op: op, Kind: KindUnknown, StatusCode: statusOf(result),
			Err: fmt.Errorf("answer has hash_type %q, hash_value %q, download_url %q: want SHA1, a hash and a URL", tb.HashType, tb.HashValue, tb.DownloadURL)}
	}
	return tb, nil
}

// DownloadBill opens the download of a bill: a GET of its download_url,
// signed like every request. WeChat does not sign this answer (the file is
// checked by its SHA-1 instead), so it goes through a client of the official
// SDK built with option.WithoutValidator; the caller reads the body as a
// stream (no timeout bounds the whole body: the caller's context does) and
// closes it. The URL must be on WeChat Pay's API host: a signed request is
// sent nowhere else.
func (c *Client) DownloadBill(ctx context.Context, tb TradeBill) (_ io.ReadCloser, err error) {
	const op = "bill_download"
	defer c.observe(op, time.Now(), &err)
	u, perr := url.Parse(tb.DownloadURL)
	if perr != nil || u.Scheme != "https" || "https://"+u.Host != consts.WechatPayAPIServer || !strings.HasPrefix(u.Path, "/v3/") {
		return nil, permanent(op, fmt.Errorf("download_url %q is not on %s/v3/", tb.DownloadURL, consts.WechatPayAPIServer))
	}
	dl, err := c.downloader()
	if err != nil {
		return nil, permanent(op, err)
	}
	result, err := dl.Get(ctx, tb.DownloadURL)
	if err != nil {
		return nil, c.wrap(op, result, err)
	}
	return result.Response.Body, nil
}

// downloader is an SDK client like c.core (same keys, same host rewriting)
// whose answers are not verified, and whose HTTP client has no overall
// timeout: a large bill may take longer than one API call may.
func (c *Client) downloader() (*core.Client, error) {
	hc, err := newHTTPClient(c.cfg)
	if err != nil {
		return nil, err
	}
	hc.Timeout = 0 // the transport still bounds connecting and the answer's headers
	cfg := c.cfg
	dl, err := core.NewClient(context.Background(),
		option.WithWechatPayPublicKeyAuthCipher(cfg.MchID, cfg.MchCertSerial, cfg.MchPrivateKey, cfg.PublicKeyID, cfg.PublicKey),
		option.WithHTTPClient(hc),
		option.WithoutValidator(), // after the cipher option, which sets a validator
	)
	if err != nil {
		return nil, fmt.Errorf("wxpay: build the download client: %w", err)
	}
	return dl, nil
}

// QueryTransaction asks WeChat for a payment by its transaction_id (the
// reconciliation asks about payments the shop has and the bill does not).
func (c *Client) QueryTransaction(ctx context.Context, transactionID string) (_ Transaction, err error) {
	const op = "query_by_id"
	defer c.observe(op, time.Now(), &err)
	if transactionID == "" || len(transactionID) > 32 {
		return Transaction{}, permanent(op, fmt.Errorf("transaction_id must be 1..32 chars, got %q", transactionID))
	}
	tx, result, err := c.jsapi.QueryOrderById(ctx, jsapi.QueryOrderByIdRequest{
		TransactionId: core.String(transactionID),
		Mchid:         core.String(c.cfg.MchID),
	})
	return c.transactionAnswer(op, tx, result, err)
}
