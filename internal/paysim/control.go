package paysim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Handler serves the WeChat Pay API v3 endpoints, jscode2session and the
// control API under /sim/.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	// WeChat Pay API v3 (signed requests, signed answers).
	mux.HandleFunc("POST /v3/pay/transactions/jsapi", s.v3(EndpointPrepay, s.handlePrepay))
	mux.HandleFunc("GET /v3/pay/transactions/out-trade-no/{out_trade_no}", s.v3(EndpointQuery, s.handleQueryByOutTradeNo))
	mux.HandleFunc("GET /v3/pay/transactions/id/{transaction_id}", s.v3(EndpointQuery, s.handleQueryByID))
	mux.HandleFunc("POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close", s.v3(EndpointClose, s.handleClose))
	mux.HandleFunc("POST /v3/refund/domestic/refunds", s.v3(EndpointRefund, s.handleRefundCreate))
	mux.HandleFunc("GET /v3/refund/domestic/refunds/{out_refund_no}", s.v3(EndpointRefundQuery, s.handleRefundQuery))
	mux.HandleFunc("/v3/", func(w http.ResponseWriter, r *http.Request) {
		s.writeReply(w, errReply(http.StatusNotFound, "NOT_FOUND", "paysim does not simulate "+r.Method+" "+r.URL.Path), false)
	})
	// Trade bills, and the control calls that make drift for them.
	s.registerBillRoutes(mux)
	// Mini-program login.
	mux.HandleFunc("GET /sns/jscode2session", s.handleLogin)
	// Mini-program server API: the access token and shipping management.
	mux.HandleFunc("POST /cgi-bin/stable_token", s.wxaEndpoint(EndpointStableToken, s.handleStableToken))
	mux.HandleFunc("POST /wxa/sec/order/is_trade_managed", s.wxaEndpoint(EndpointIsTradeManaged, s.handleIsTradeManaged))
	mux.HandleFunc("POST /wxa/sec/order/upload_shipping_info", s.wxaEndpoint(EndpointUploadShippingInfo, s.handleUploadShippingInfo))
	mux.HandleFunc("POST /wxa/sec/order/get_order", s.wxaEndpoint(EndpointGetOrder, s.handleGetOrder))
	mux.HandleFunc("POST /wxa/sec/order/notify_confirm_receive", s.wxaEndpoint(EndpointNotifyConfirmReceive, s.handleNotifyConfirmReceive))
	mux.HandleFunc("POST /wxa/sec/order/set_msg_jump_path", s.wxaEndpoint(EndpointSetMsgJumpPath, s.handleSetMsgJumpPath))

	// Control API (plain JSON, unsigned).
	mux.HandleFunc("GET /sim/health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"ok": true, "appid": s.opts.AppID, "mchid": s.opts.MchID})
	})
	mux.HandleFunc("GET /sim/transactions", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"transactions": s.Transactions()})
	})
	mux.HandleFunc("GET /sim/transactions/{out_trade_no}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.Transaction(r.PathValue("out_trade_no"))
		if !ok {
			writeControlError(w, ErrNotFound, "no transaction "+r.PathValue("out_trade_no"))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /sim/transactions/{out_trade_no}/pay", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			When string `json:"when"` // "now" (default) or "on_close"
		}
		if !readOptionalJSON(w, r, &in) {
			return
		}
		switch in.When {
		case "", "now":
			s.controlTx(w, r, s.Pay)
		case "on_close":
			s.controlTx(w, r, s.PayOnClose)
		default:
			writeControlError(w, ErrInvalid, `when must be "now" or "on_close"`)
		}
	})
	mux.HandleFunc("POST /sim/transactions/{out_trade_no}/fail", func(w http.ResponseWriter, r *http.Request) {
		s.controlTx(w, r, s.FailPayment)
	})
	mux.HandleFunc("POST /sim/transactions/{out_trade_no}/userpaying", func(w http.ResponseWriter, r *http.Request) {
		s.controlTx(w, r, s.StartPaying)
	})
	mux.HandleFunc("POST /sim/transactions/{out_trade_no}/abandon", func(w http.ResponseWriter, r *http.Request) {
		s.controlTx(w, r, s.Abandon)
	})
	mux.HandleFunc("GET /sim/refunds/{out_refund_no}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.Refund(r.PathValue("out_refund_no"))
		if !ok {
			writeControlError(w, ErrNotFound, "no refund "+r.PathValue("out_refund_no"))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /sim/refunds/{out_refund_no}/settle", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Status string `json:"status"`
		}
		if !readOptionalJSON(w, r, &in) {
			return
		}
		v, err := s.SettleRefund(r.PathValue("out_refund_no"), in.Status)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("GET /sim/shipping/{out_trade_no}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.Shipping(r.PathValue("out_trade_no"))
		if !ok {
			writeControlError(w, ErrNotFound, "no transaction "+r.PathValue("out_trade_no"))
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
	mux.HandleFunc("POST /sim/shipping/{out_trade_no}/confirm-receipt", func(w http.ResponseWriter, r *http.Request) {
		s.controlShipping(w, r, s.ConfirmReceipt)
	})
	mux.HandleFunc("POST /sim/shipping/{out_trade_no}/remind-shipping", func(w http.ResponseWriter, r *http.Request) {
		s.controlShipping(w, r, s.RemindShipping)
	})
	mux.HandleFunc("GET /sim/wxa", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Wxa())
	})
	mux.HandleFunc("POST /sim/wxa/revoke-token", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			KeepServing bool `json:"keep_serving"`
		}
		if !readOptionalJSON(w, r, &in) {
			return
		}
		writeJSON(w, http.StatusOK, s.RevokeToken(in.KeepServing))
	})
	mux.HandleFunc("GET /sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	})
	mux.HandleFunc("POST /sim/faults", func(w http.ResponseWriter, r *http.Request) {
		var in Faults
		if !readJSON(w, r, &in) {
			return
		}
		out, err := s.ApplyFaults(in)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("DELETE /sim/faults", func(w http.ResponseWriter, _ *http.Request) {
		s.ClearFaults()
		writeJSON(w, http.StatusOK, s.CurrentFaults())
	})
	mux.HandleFunc("GET /sim/settings", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Settings())
	})
	mux.HandleFunc("POST /sim/settings", func(w http.ResponseWriter, r *http.Request) {
		var in Settings
		if !readJSON(w, r, &in) {
			return
		}
		out, err := s.UpdateSettings(in)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	})
	mux.HandleFunc("GET /sim/signtest", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"probes": s.Probes()})
	})
	mux.HandleFunc("POST /sim/signtest", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			URL string `json:"url"`
		}
		if !readJSON(w, r, &in) {
			return
		}
		res, err := s.SendSignTest(r.Context(), in.URL)
		if err != nil {
			writeControlError(w, err, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return logRequests(s, mux)
}

func logRequests(s *Sim, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		s.log.Debug("paysim: request", "method", r.Method, "path", r.URL.Path, "status", rec.status, "ms", time.Since(start).Milliseconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (s *Sim) controlTx(w http.ResponseWriter, r *http.Request, action func(string) (TransactionView, error)) {
	v, err := action(r.PathValue("out_trade_no"))
	if err != nil {
		writeControlError(w, err, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Sim) controlShipping(w http.ResponseWriter, r *http.Request, action func(string) (ShippingView, error)) {
	v, err := action(r.PathValue("out_trade_no"))
	if err != nil {
		writeControlError(w, err, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeControlError(w http.ResponseWriter, err error, msg string) {
	status, code := http.StatusInternalServerError, "INTERNAL"
	switch {
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "NOT_FOUND"
	case errors.Is(err, ErrConflict):
		status, code = http.StatusConflict, "CONFLICT"
	case errors.Is(err, ErrInvalid):
		status, code = http.StatusBadRequest, "INVALID"
	}
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeControlError(w, ErrInvalid, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

// readOptionalJSON accepts an empty body.
func readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeControlError(w, ErrInvalid, "cannot read body")
		return false
	}
	if len(data) == 0 {
		return true
	}
	if err := json.Unmarshal(data, v); err != nil {
		writeControlError(w, ErrInvalid, "bad JSON body: "+err.Error())
		return false
	}
	return true
}
