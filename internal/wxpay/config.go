package wxpay

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variable names of the WeChat Pay settings (the project's contract).
const (
	EnvAppID             = "WECHAT_APPID"
	EnvMchID             = "WECHATPAY_MCHID"
	EnvMchCertSerial     = "WECHATPAY_MCH_CERT_SERIAL"
	EnvMchPrivateKeyFile = "WECHATPAY_MCH_PRIVATE_KEY_FILE"
	EnvAPIv3Key          = "WECHATPAY_APIV3_KEY"
	EnvPublicKeyID       = "WECHATPAY_PUBLIC_KEY_ID"
	EnvPublicKeyFile     = "WECHATPAY_PUBLIC_KEY_FILE"
	EnvNotifyURL         = "WECHATPAY_NOTIFY_URL"
	EnvBaseURL           = "WECHATPAY_BASE_URL"
)

// DefaultTimeout bounds one API call (connection, request and the whole answer).
const DefaultTimeout = 10 * time.Second

// Config is what the WeChat Pay client and the notify handler need.
type Config struct {
	AppID         string          // WECHAT_APPID: the mini-program's appid
	MchID         string          // WECHATPAY_MCHID
	MchCertSerial string          // WECHATPAY_MCH_CERT_SERIAL: serial of the merchant API certificate
	MchPrivateKey *rsa.PrivateKey // from WECHATPAY_MCH_PRIVATE_KEY_FILE (PKCS#8 PEM)
	APIv3Key      string          // WECHATPAY_APIV3_KEY: exactly 32 bytes
	PublicKeyID   string          // WECHATPAY_PUBLIC_KEY_ID: "PUB_KEY_ID_..."
	PublicKey     *rsa.PublicKey  // from WECHATPAY_PUBLIC_KEY_FILE (PKIX PEM)
	NotifyURL     string          // WECHATPAY_NOTIFY_URL: where WeChat posts payment and refund results
	// BaseURL is "" for the real WeChat Pay host; otherwise scheme://host[:port]
	// (no path) that every SDK call is rewritten to, e.g. the simulator.
	BaseURL string
	// Timeout bounds one call; 0 means DefaultTimeout.
	Timeout time.Duration
	// Transport, when set, is the base RoundTripper under the host rewriting
	// (tests, instrumentation). nil means a tuned clone of http.DefaultTransport.
	Transport http.RoundTripper
	// OnCall, when set, is told of every API call: the operation ("prepay",
	// "query", "query_by_id", "close", "refund", "refund_query", "tradebill",
	// "bill_download"), how it ended (KindNone on
	// success) and how long it took. For metrics.
	OnCall func(op string, outcome ErrorKind, took time.Duration)
}

// ConfigFromEnv reads the WeChat Pay settings with lookup (os.Getenv in
// production), loads both key files and validates the result. Errors name
// the variable at fault.
func ConfigFromEnv(lookup func(string) string) (Config, error) {
	cfg := Config{
		AppID:         strings.TrimSpace(lookup(EnvAppID)),
		MchID:         strings.TrimSpace(lookup(EnvMchID)),
		MchCertSerial: strings.TrimSpace(lookup(EnvMchCertSerial)),
		APIv3Key:      lookup(EnvAPIv3Key),
		PublicKeyID:   strings.TrimSpace(lookup(EnvPublicKeyID)),
		NotifyURL:     strings.TrimSpace(lookup(EnvNotifyURL)),
		BaseURL:       strings.TrimSpace(lookup(EnvBaseURL)),
	}
	if err := LoadConfigKeys(&cfg, lookup(EnvMchPrivateKeyFile), lookup(EnvPublicKeyFile)); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// LoadConfigKeys loads the merchant private key and the WeChat Pay public key
// into cfg. Errors name the environment variable and the file.
func LoadConfigKeys(cfg *Config, mchPrivateKeyFile, publicKeyFile string) error {
	if strings.TrimSpace(mchPrivateKeyFile) == "" {
		return fmt.Errorf("wxpay: %s is not set", EnvMchPrivateKeyFile)
	}
	if strings.TrimSpace(publicKeyFile) == "" {
		return fmt.Errorf("wxpay: %s is not set", EnvPublicKeyFile)
	}
	priv, err := LoadPrivateKeyFile(mchPrivateKeyFile)
	if err != nil {
		return fmt.Errorf("wxpay: %s: %w", EnvMchPrivateKeyFile, err)
	}
	pub, err := LoadPublicKeyFile(publicKeyFile)
	if err != nil {
		return fmt.Errorf("wxpay: %s: %w", EnvPublicKeyFile, err)
	}
	cfg.MchPrivateKey, cfg.PublicKey = priv, pub
	return nil
}

// Validate checks that every field the client needs is present and well formed.
func (c Config) Validate() error {
	var errs []error
	need := func(v, env string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("%s is not set", env))
		}
	}
	need(c.AppID, EnvAppID)
	need(c.MchID, EnvMchID)
	need(c.MchCertSerial, EnvMchCertSerial)
	need(c.PublicKeyID, EnvPublicKeyID)
	if c.MchPrivateKey == nil {
		errs = append(errs, fmt.Errorf("%s: merchant private key not loaded", EnvMchPrivateKeyFile))
	}
	if c.PublicKey == nil {
		errs = append(errs, fmt.Errorf("%s: WeChat Pay public key not loaded", EnvPublicKeyFile))
	}
	if len(c.APIv3Key) != 32 {
		errs = append(errs, fmt.Errorf("%s must be exactly 32 bytes, got %d", EnvAPIv3Key, len(c.APIv3Key)))
	}
	if c.NotifyURL == "" {
		errs = append(errs, fmt.Errorf("%s is not set", EnvNotifyURL))
	} else if u, err := url.Parse(c.NotifyURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s must be an absolute http(s) URL, got %q", EnvNotifyURL, c.NotifyURL))
	} else if u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("%s must not carry a query string (WeChat refuses it)", EnvNotifyURL))
	}
	if c.BaseURL != "" {
		if _, err := parseBaseURL(c.BaseURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", EnvBaseURL, err))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("timeout must not be negative"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("wxpay: invalid configuration: %w", errors.Join(errs...))
	}
	return nil
}

func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a URL: %q", s)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("must be scheme://host[:port], got %q", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		// The request path is part of the request signature: a prefix would
		// break it, so only the host may change.
		return nil, fmt.Errorf("must have no path or query (the path is signed), got %q", s)
	}
	return u, nil
}

// LoadPrivateKeyFile reads an RSA private key in PKCS#8 PEM ("BEGIN PRIVATE
// KEY"), the form WeChat Pay issues as apiclient_key.pem.
func LoadPrivateKeyFile(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return ParsePrivateKeyPEM(data, path)
}

// ParsePrivateKeyPEM parses a PKCS#8 RSA private key; name is used in errors.
func ParsePrivateKeyPEM(data []byte, name string) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block found (want -----BEGIN PRIVATE KEY-----)", name)
	}
	switch block.Type {
	case "PRIVATE KEY":
	case "RSA PRIVATE KEY":
		return nil, fmt.Errorf("%s: key is PKCS#1 (BEGIN RSA PRIVATE KEY); PKCS#8 (BEGIN PRIVATE KEY) is required: convert with `openssl pkcs8 -topk8 -nocrypt -in key.pem -out apiclient_key.pem`", name)
	case "ENCRYPTED PRIVATE KEY":
		return nil, fmt.Errorf("%s: key is encrypted; an unencrypted PKCS#8 key is required", name)
	default:
		return nil, fmt.Errorf("%s: PEM block is %q, want PRIVATE KEY (PKCS#8)", name, block.Type)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid PKCS#8 private key: %v", name, err)
	}
	rsaKey, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: key is %T, want an RSA key", name, key)
	}
	if rsaKey.N.BitLen() < 2048 {
		return nil, fmt.Errorf("%s: RSA key has %d bits, want at least 2048", name, rsaKey.N.BitLen())
	}
	return rsaKey, nil
}

// LoadPublicKeyFile reads an RSA public key in PKIX PEM ("BEGIN PUBLIC KEY"),
// the WeChat Pay public key (pub_key.pem) downloaded from the merchant platform.
func LoadPublicKeyFile(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return ParsePublicKeyPEM(data, path)
}

// ParsePublicKeyPEM parses a PKIX RSA public key; name is used in errors.
func ParsePublicKeyPEM(data []byte, name string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block found (want -----BEGIN PUBLIC KEY-----)", name)
	}
	switch block.Type {
	case "PUBLIC KEY":
	case "RSA PUBLIC KEY":
		return nil, fmt.Errorf("%s: key is PKCS#1 (BEGIN RSA PUBLIC KEY); PKIX (BEGIN PUBLIC KEY) is required", name)
	case "CERTIFICATE":
		return nil, fmt.Errorf("%s: this is a certificate; the WeChat Pay public key (BEGIN PUBLIC KEY, pub_key.pem) is required", name)
	default:
		return nil, fmt.Errorf("%s: PEM block is %q, want PUBLIC KEY (PKIX)", name, block.Type)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid PKIX public key: %v", name, err)
	}
	rsaKey, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: key is %T, want an RSA key", name, key)
	}
	return rsaKey, nil
}
