package paysim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// OpenIDFor is the stable openid the simulator's jscode2session gives a code.
func OpenIDFor(appID, code string) string {
	sum := sha256.Sum256([]byte(appID + "|" + code))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

func writeLoginJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func loginError(w http.ResponseWriter, code int, msg string) {
	writeLoginJSON(w, map[string]any{"errcode": code, "errmsg": msg + ", rid: " + strings.ToLower(randHex(8))})
}

// handleLogin is GET /sns/jscode2session. appid and secret must match. Any
// code is accepted and maps to a stable openid, except codes of the form
// "errcode:<n>", which answer that errcode (e.g. errcode:40029, errcode:-1).
func (s *Sim) handleLogin(w http.ResponseWriter, r *http.Request) {
	if f := s.takeEndpointFault(EndpointLogin); f != nil {
		if f.DelayMS > 0 && !s.waitRequest(r.Context(), time.Duration(f.DelayMS)*time.Millisecond) {
			return
		}
		switch {
		case f.Status != 0:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(f.Status)
			writeLoginJSON(w, map[string]any{"errcode": -1, "errmsg": "system error (paysim injected HTTP " + strconv.Itoa(f.Status) + ")"})
			return
		case f.ErrCode != 0:
			loginError(w, f.ErrCode, loginErrMsg(f.ErrCode))
			return
		}
	}
	q := r.URL.Query()
	code := q.Get("js_code")
	switch {
	case q.Get("appid") != s.opts.AppID:
		loginError(w, 40013, "invalid appid")
		return
	case q.Get("secret") != s.opts.LoginSecret:
		loginError(w, 40125, "invalid appsecret")
		return
	case q.Get("grant_type") != "authorization_code":
		loginError(w, 40002, "invalid grant_type")
		return
	case code == "":
		loginError(w, 41008, "missing code")
		return
	}
	if v, ok := strings.CutPrefix(code, "errcode:"); ok {
		if n, err := strconv.Atoi(v); err == nil && n != 0 {
			loginError(w, n, loginErrMsg(n))
			return
		}
	}
	s.mu.Lock()
	used := s.usedCodes[code]
	if s.opts.LoginStrictCodes {
		s.usedCodes[code] = true
	}
	s.mu.Unlock()
	if used {
		loginError(w, 40163, "code been used")
		return
	}
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	writeLoginJSON(w, map[string]any{
		"openid":      OpenIDFor(s.opts.AppID, code),
		"session_key": base64.StdEncoding.EncodeToString(key),
	})
}

func loginErrMsg(code int) string {
	switch code {
	case -1:
		return "system error"
	case 40029:
		return "invalid code"
	case 45011:
		return "api minute-quota reach limit  mustslower  retry next minute"
	case 40226:
		return "invalid scene, high risk user"
	case 40163:
		return "code been used"
	}
	return "error " + strconv.Itoa(code)
}
