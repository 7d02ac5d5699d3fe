package paysim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// RunCommand runs the simulator as a standalone server (`ordersaga paysim`)
// until ctx is cancelled, then shuts down gracefully. Flags:
//
//	-addr           listen address (default :8091)
//	-keys           dev key directory, generated on first use (default .data/keys)
//	-appid          mini-program appid (default $WECHAT_APPID or DefaultAppID)
//	-mchid          merchant id (default $WECHATPAY_MCHID or DefaultMchID)
//	-secret         app secret for jscode2session (default $WECHAT_APP_SECRET or DefaultLoginSecret)
//	-notify-scale   multiplies WeChat's notify retry schedule (default 1)
//	-refund-delay   PROCESSING → SUCCESS delay (default 2s; negative: only via /sim/refunds/{no}/settle)
//	-close-on-paid  refuse | ok204 (default refuse)
//	-strict-codes   a login code works once (default false: any code, any number of times)
//	-bills-immediate  trade bills of every day, today's included, at once
//	-notify-url     only printed in the suggested merchant settings (default http://127.0.0.1:8080/v1/wechatpay/notify)
//	-push-url       the shop's message push URL: shipping events are POSTed there (default none: recorded, not sent)
//	-push-token     message push Token (default $WECHAT_PUSH_TOKEN)
//	-push-aes-key   message push EncodingAESKey, 43 characters (default $WECHAT_PUSH_AES_KEY)
//	-trade-managed  is_trade_managed answers true (default true)
//	-fresh-payment  upload_shipping_info within this long of a payment answers 10060001 (default 0: never)
//	-receipt-auto-confirm  WeChat confirms receipt by itself this long after shipping (default 0: never)
//	-v              log every request
func RunCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("paysim", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", ":8091", "listen address")
	keysDir := fs.String("keys", ".data/keys", "dev key directory (generated on first use)")
	appID := fs.String("appid", envOr("WECHAT_APPID", DefaultAppID), "mini-program appid")
	mchID := fs.String("mchid", envOr("WECHATPAY_MCHID", DefaultMchID), "merchant id")
	secret := fs.String("secret", envOr("WECHAT_APP_SECRET", DefaultLoginSecret), "app secret accepted by jscode2session")
	scale := fs.Float64("notify-scale", 1, "multiplies the notify retry schedule (15s 15s 30s 3m ...)")
	refundDelay := fs.Duration("refund-delay", DefaultRefundDelay, "refund PROCESSING → SUCCESS delay (negative: manual)")
	closeOnPaid := fs.String("close-on-paid", CloseRefuse, "answer to closing a paid order: refuse | ok204")
	strict := fs.Bool("strict-codes", false, "a login code works only once (errcode 40163 after)")
	notifyURL := fs.String("notify-url", "http://127.0.0.1:8080/v1/wechatpay/notify", "merchant notify URL to print in the suggested settings")
	billsNow := fs.Bool("bills-immediate", false, "every day's trade bill, today's included, is available at once (not from 10:00 the next day)")
	pushURL := fs.String("push-url", "", "the shop's message push URL (POST /v1/wechat/events): shipping events go there")
	pushToken := fs.String("push-token", envOr("WECHAT_PUSH_TOKEN", ""), "message push Token")
	pushKey := fs.String("push-aes-key", envOr("WECHAT_PUSH_AES_KEY", ""), "message push EncodingAESKey (43 characters)")
	managed := fs.Bool("trade-managed", true, "is_trade_managed answers true: WeChat holds the money until receipt is confirmed")
	fresh := fs.Duration("fresh-payment", 0, "upload_shipping_info within this long of the payment answers 10060001")
	autoConfirm := fs.Duration("receipt-auto-confirm", 0, "WeChat confirms receipt by itself this long after shipping (0: never)")
	verbose := fs.Bool("v", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("paysim: unexpected arguments %v", fs.Args())
	}
	if *scale <= 0 {
		return errors.New("paysim: -notify-scale must be > 0")
	}
	if *closeOnPaid != CloseRefuse && *closeOnPaid != CloseOK204 {
		return fmt.Errorf("paysim: -close-on-paid must be %s or %s", CloseRefuse, CloseOK204)
	}
	if *pushURL != "" && (!validNotifyURL(*pushURL) || *pushToken == "" || len(*pushKey) != 43) {
		return errors.New("paysim: -push-url needs an absolute http(s) URL without query, -push-token and a 43-character -push-aes-key")
	}
	keys, err := EnsureDevKeys(*keysDir)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	opts := keys.SimOptions(*appID, *mchID)
	opts.NotifyScale = *scale
	opts.RefundDelay = *refundDelay
	if *refundDelay == 0 {
		opts.RefundDelay = time.Nanosecond
	}
	opts.CloseOnPaid = *closeOnPaid
	opts.LoginSecret = *secret
	opts.LoginStrictCodes = *strict
	opts.BillsImmediate = *billsNow
	opts.PushURL, opts.PushToken, opts.PushAESKey = *pushURL, *pushToken, *pushKey
	opts.NotTradeManaged = !*managed
	opts.FreshPayment, opts.ReceiptAutoConfirm = *fresh, *autoConfirm
	opts.Logger = logger
	sim := New(opts)
	defer sim.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("paysim: listen on %s: %w (is another simulator running? use -addr)", *addr, err)
	}
	base := "http://" + displayAddr(ln.Addr())
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}

	fmt.Fprintf(stdout, "paysim listening on %s (appid %s, mchid %s, notify scale %g)\n", base, *appID, *mchID, *scale)
	fmt.Fprintf(stdout, "merchant settings for the API and worker:\n")
	env := keys.Env(base, *notifyURL)
	env["WECHAT_APPID"], env["WECHATPAY_MCHID"], env["WECHAT_APP_SECRET"], env["WECHAT_API_BASE_URL"] = *appID, *mchID, *secret, base
	if *pushToken != "" {
		env["WECHAT_PUSH_TOKEN"], env["WECHAT_PUSH_AES_KEY"] = *pushToken, *pushKey
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(stdout, "  %s=%s\n", k, env[k])
	}
	fmt.Fprintf(stdout, "control: curl -X POST %s/sim/transactions/<out_trade_no>/pay ; curl %s/sim/transactions/<out_trade_no>\n", base, base)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("paysim: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("paysim: shutdown: %w", err)
	}
	fmt.Fprintln(stdout, "paysim stopped")
	return nil
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

// displayAddr turns ":8091" / "[::]:8091" into a dialable 127.0.0.1 address.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
