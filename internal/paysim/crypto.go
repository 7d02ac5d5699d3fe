package paysim

import (
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// chinaTime is Asia/Shanghai (no DST) without tzdata.
var chinaTime = time.FixedZone("CST", 8*3600)

func fmtTime(t time.Time) string { return t.In(chinaTime).Format(time.RFC3339) }

const nonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func randString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = nonceAlphabet[int(b[i])%len(nonceAlphabet)]
	}
	return string(b)
}

func randDigits(n int) string {
	var sb strings.Builder
	for sb.Len() < n {
		v, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic(err)
		}
		sb.WriteByte(byte('0' + v.Int64()))
	}
	return sb.String()
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return strings.ToUpper(hex.EncodeToString(b))[:n]
}

func newUUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newPrepayID looks like WeChat's: "wx" + yyyyMMddHHmmss + 20 more chars.
func newPrepayID(now time.Time) string {
	return "wx" + now.In(chinaTime).Format("20060102150405") + strings.ToLower(randHex(20))
}

// newTransactionID looks like WeChat's: 28 digits starting 4200.
func newTransactionID(now time.Time) string {
	return "4200" + randDigits(6) + now.In(chinaTime).Format("20060102") + randDigits(10)
}

// newRefundID looks like WeChat's: 29 digits starting 50.
func newRefundID(now time.Time) string {
	return "50" + randDigits(9) + now.In(chinaTime).Format("20060102") + randDigits(10)
}

func signSHA256(key *rsa.PrivateKey, message string) (string, error) {
	if key == nil {
		return "", errors.New("paysim has no platform private key")
	}
	sum := sha256.Sum256([]byte(message))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

func verifySHA256(pub *rsa.PublicKey, message, sigB64 string) error {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return errors.New("signature is not base64")
	}
	sum := sha256.Sum256([]byte(message))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}

// flipSignature changes one byte of a base64 signature (still valid base64).
func flipSignature(sigB64 string) string {
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil || len(sig) == 0 {
		return "A" + sigB64
	}
	sig[len(sig)/2] ^= 0x01
	return base64.StdEncoding.EncodeToString(sig)
}

// encryptResource seals plaintext with AEAD_AES_256_GCM under the APIv3 key,
// as WeChat encrypts notification resources.
func encryptResource(apiV3Key string, plaintext []byte, associatedData, nonce string) (string, error) {
	if len(apiV3Key) != 32 {
		return "", fmt.Errorf("APIv3 key must be 32 bytes, got %d", len(apiV3Key))
	}
	block, err := aes.NewCipher([]byte(apiV3Key))
	if err != nil {
		return "", err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", err
	}
	if len(nonce) != gcm.NonceSize() {
		return "", fmt.Errorf("nonce must be %d bytes", gcm.NonceSize())
	}
	sealed := gcm.Seal(nil, []byte(nonce), plaintext, []byte(associatedData))
	return base64.StdEncoding.EncodeToString(sealed), nil
}

// authHeader is the parsed Authorization header of a merchant request.
type authHeader struct {
	mchID, nonce, timestamp, serial, signature string
}

const authScheme = "WECHATPAY2-SHA256-RSA2048"

func parseAuthorization(h string) (authHeader, error) {
	scheme, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || scheme != authScheme {
		return authHeader{}, fmt.Errorf("the Authorization header must use %s", authScheme)
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return authHeader{}, errors.New("malformed Authorization parameters")
		}
		v = strings.TrimSpace(v)
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return authHeader{}, fmt.Errorf("the Authorization parameter %s is not quoted", k)
		}
		fields[strings.TrimSpace(k)] = v[1 : len(v)-1]
	}
	a := authHeader{
		mchID:     fields["mchid"],
		nonce:     fields["nonce_str"],
		timestamp: fields["timestamp"],
		serial:    fields["serial_no"],
		signature: fields["signature"],
	}
	for name, v := range map[string]string{"mchid": a.mchID, "nonce_str": a.nonce, "timestamp": a.timestamp, "serial_no": a.serial, "signature": a.signature} {
		if v == "" {
			return authHeader{}, fmt.Errorf("the Authorization header has no %s", name)
		}
	}
	return a, nil
}
