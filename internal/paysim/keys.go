package paysim

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// File names under the dev key directory.
const (
	FileMchPrivateKey      = "apiclient_key.pem"       // merchant private key, PKCS#8 (WECHATPAY_MCH_PRIVATE_KEY_FILE)
	FileMchPublicKey       = "apiclient_pub.pem"       // merchant public key, PKIX (the simulator verifies requests with it)
	FilePlatformPrivateKey = "paysim_platform_key.pem" // the simulator's private key, PKCS#8
	FilePublicKey          = "pub_key.pem"             // the simulator's public key, PKIX (WECHATPAY_PUBLIC_KEY_FILE)
	FileKeysMeta           = "keys.json"               // serial, public key id, APIv3 key
)

// Keys are the dev credentials shared by the API/worker (merchant side) and
// the simulator (WeChat side).
type Keys struct {
	Dir                    string
	MchPrivateKeyFile      string
	MchPublicKeyFile       string
	MchCertSerial          string
	PlatformPrivateKeyFile string
	PublicKeyFile          string
	PublicKeyID            string
	APIv3Key               string

	MchPrivateKey      *rsa.PrivateKey
	MchPublicKey       *rsa.PublicKey
	PlatformPrivateKey *rsa.PrivateKey
	PublicKey          *rsa.PublicKey
}

type keysMeta struct {
	MchCertSerial string    `json:"mch_cert_serial"`
	PublicKeyID   string    `json:"public_key_id"`
	APIv3Key      string    `json:"apiv3_key"`
	CreatedAt     time.Time `json:"created_at"`
	Note          string    `json:"note"`
}

// SimOptions returns simulator options wired to these keys.
func (k Keys) SimOptions(appID, mchID string) Options {
	return Options{
		AppID:              appID,
		MchID:              mchID,
		MerchantPublicKey:  k.MchPublicKey,
		MerchantCertSerial: k.MchCertSerial,
		PlatformPrivateKey: k.PlatformPrivateKey,
		PublicKeyID:        k.PublicKeyID,
		APIv3Key:           k.APIv3Key,
	}
}

// Env returns the WECHATPAY_* settings that point the merchant side at a
// simulator at baseURL with these keys.
func (k Keys) Env(baseURL, notifyURL string) map[string]string {
	return map[string]string{
		"WECHATPAY_MCH_CERT_SERIAL":      k.MchCertSerial,
		"WECHATPAY_MCH_PRIVATE_KEY_FILE": k.MchPrivateKeyFile,
		"WECHATPAY_APIV3_KEY":            k.APIv3Key,
		"WECHATPAY_PUBLIC_KEY_ID":        k.PublicKeyID,
		"WECHATPAY_PUBLIC_KEY_FILE":      k.PublicKeyFile,
		"WECHATPAY_BASE_URL":             baseURL,
		"WECHATPAY_NOTIFY_URL":           notifyURL,
	}
}

// EnsureDevKeys returns the dev keys under dir, generating them on first use:
// the merchant RSA-2048 key (PKCS#8) and its public key, the simulator's
// RSA-2048 key (PKCS#8) and its PKIX public key, a public key id, a merchant
// certificate serial and a 32-byte APIv3 key. Later calls reuse them. A
// partial directory is an error (nothing is overwritten).
func EnsureDevKeys(dir string) (Keys, error) {
	if dir == "" {
		return Keys{}, errors.New("paysim: key directory is empty")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Keys{}, fmt.Errorf("paysim: create key directory: %w", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return Keys{}, err
	}
	defer unlock()

	names := []string{FileMchPrivateKey, FileMchPublicKey, FilePlatformPrivateKey, FilePublicKey, FileKeysMeta}
	var present, missing []string
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			present = append(present, n)
		} else if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, n)
		} else {
			return Keys{}, fmt.Errorf("paysim: %w", err)
		}
	}
	switch {
	case len(missing) == 0:
		return loadDevKeys(dir)
	case len(present) > 0:
		return Keys{}, fmt.Errorf("paysim: key directory %s is incomplete (missing %v); remove it to regenerate", dir, missing)
	}
	if err := generateDevKeys(dir); err != nil {
		return Keys{}, err
	}
	return loadDevKeys(dir)
}

// lockDir serialises key generation between processes sharing dir.
func lockDir(dir string) (func(), error) {
	lock := filepath.Join(dir, ".lock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("paysim: lock key directory: %w", err)
		}
		if st, err := os.Stat(lock); err == nil && time.Since(st.ModTime()) > 20*time.Second {
			_ = os.Remove(lock) // left behind by a crashed process
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("paysim: key directory %s is locked (%s)", dir, lock)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func generateDevKeys(dir string) error {
	mch, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	platform, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	write := func(name string, perm os.FileMode, data []byte) error {
		tmp := filepath.Join(dir, name+".tmp")
		if err := os.WriteFile(tmp, data, perm); err != nil {
			return fmt.Errorf("paysim: write %s: %w", name, err)
		}
		return os.Rename(tmp, filepath.Join(dir, name))
	}
	privPEM := func(k *rsa.PrivateKey) ([]byte, error) {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	pubPEM := func(k *rsa.PublicKey) ([]byte, error) {
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
	}
	files := []struct {
		name string
		perm os.FileMode
		data func() ([]byte, error)
	}{
		{FileMchPrivateKey, 0o600, func() ([]byte, error) { return privPEM(mch) }},
		{FileMchPublicKey, 0o644, func() ([]byte, error) { return pubPEM(&mch.PublicKey) }},
		{FilePlatformPrivateKey, 0o600, func() ([]byte, error) { return privPEM(platform) }},
		{FilePublicKey, 0o644, func() ([]byte, error) { return pubPEM(&platform.PublicKey) }},
		{FileKeysMeta, 0o600, func() ([]byte, error) {
			return json.MarshalIndent(keysMeta{
				MchCertSerial: randHex(40),
				PublicKeyID:   "PUB_KEY_ID_0000" + randDigits(28),
				APIv3Key:      randString(32),
				CreatedAt:     time.Now().UTC(),
				Note:          "development keys for the WeChat Pay simulator; never use them with real WeChat Pay",
			}, "", "  ")
		}},
	}
	for _, f := range files { // keys.json last: its presence means complete
		data, err := f.data()
		if err != nil {
			return fmt.Errorf("paysim: encode %s: %w", f.name, err)
		}
		if err := write(f.name, f.perm, data); err != nil {
			return err
		}
	}
	return nil
}

func loadDevKeys(dir string) (Keys, error) {
	k := Keys{
		Dir:                    dir,
		MchPrivateKeyFile:      filepath.Join(dir, FileMchPrivateKey),
		MchPublicKeyFile:       filepath.Join(dir, FileMchPublicKey),
		PlatformPrivateKeyFile: filepath.Join(dir, FilePlatformPrivateKey),
		PublicKeyFile:          filepath.Join(dir, FilePublicKey),
	}
	var meta keysMeta
	data, err := os.ReadFile(filepath.Join(dir, FileKeysMeta))
	if err != nil {
		return Keys{}, fmt.Errorf("paysim: %w", err)
	}
	if err := json.Unmarshal(data, &meta); err != nil {
		return Keys{}, fmt.Errorf("paysim: %s: %w", FileKeysMeta, err)
	}
	if len(meta.APIv3Key) != 32 || meta.PublicKeyID == "" || meta.MchCertSerial == "" {
		return Keys{}, fmt.Errorf("paysim: %s is incomplete (apiv3_key must be 32 bytes, public_key_id and mch_cert_serial set)", FileKeysMeta)
	}
	k.MchCertSerial, k.PublicKeyID, k.APIv3Key = meta.MchCertSerial, meta.PublicKeyID, meta.APIv3Key
	if k.MchPrivateKey, err = readPrivateKey(k.MchPrivateKeyFile); err != nil {
		return Keys{}, err
	}
	if k.MchPublicKey, err = readPublicKey(k.MchPublicKeyFile); err != nil {
		return Keys{}, err
	}
	if k.PlatformPrivateKey, err = readPrivateKey(k.PlatformPrivateKeyFile); err != nil {
		return Keys{}, err
	}
	if k.PublicKey, err = readPublicKey(k.PublicKeyFile); err != nil {
		return Keys{}, err
	}
	if !k.MchPrivateKey.PublicKey.Equal(k.MchPublicKey) {
		return Keys{}, fmt.Errorf("paysim: %s does not match %s", FileMchPublicKey, FileMchPrivateKey)
	}
	if !k.PlatformPrivateKey.PublicKey.Equal(k.PublicKey) {
		return Keys{}, fmt.Errorf("paysim: %s does not match %s", FilePublicKey, FilePlatformPrivateKey)
	}
	return k, nil
}

func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("paysim: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("paysim: %s: want a PKCS#8 PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("paysim: %s: %w", path, err)
	}
	rk, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("paysim: %s: not an RSA key", path)
	}
	return rk, nil
}

func readPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("paysim: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("paysim: %s: want a PKIX PEM public key", path)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("paysim: %s: %w", path, err)
	}
	rk, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("paysim: %s: not an RSA key", path)
	}
	return rk, nil
}
