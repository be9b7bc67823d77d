package monitor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// testCA issues certificates for the TLS tests; nothing is checked in.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tmaflow test ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM certificate and key for a server (127.0.0.1) or client.
func (ca *testCA) issue(t *testing.T, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "probe"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.Subject.CommonName = "monitor"
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func tlsClient(ca *testCA, cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	otherCA := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 10, true)
	clientCertPEM, clientKeyPEM := ca.issue(t, 11, false)
	strangerCertPEM, strangerKeyPEM := otherCA.issue(t, 12, false)
	paths := map[string][]byte{"server.pem": certPEM, "server-key.pem": keyPEM, "ca.pem": ca.pem}
	for name, b := range paths {
		writeFile(t, filepath.Join(dir, name), b)
	}
	clientCert, err := tls.X509KeyPair(clientCertPEM, clientKeyPEM)
	require.NoError(t, err)
	strangerCert, err := tls.X509KeyPair(strangerCertPEM, strangerKeyPEM)
	require.NoError(t, err)
	body := fixture(t, "message.json")
	creds := request{body: body, user: "1", pass: "probe-one-secret"}

	t.Run("tls", func(t *testing.T) {
		cfg := testConfig()
		cfg.TLS = TLSConfig{CertFile: filepath.Join(dir, "server.pem"), KeyFile: filepath.Join(dir, "server-key.pem")}
		pub := &fakePublisher{}
		h := start(t, cfg, Options{Publisher: pub})
		require.Equal(t, 200, h.do(t, tlsClient(ca, nil), creds).code)
		require.Len(t, pub.published(), 1)

		// Plain HTTP is refused, and a client that does not trust the CA fails.
		code, text := get(t, "http://"+h.svc.Addr()+"/-/healthy")
		require.Equal(t, 400, code, text)
		_, err := tlsClient(otherCA, nil).Get(h.url + "/-/healthy")
		require.ErrorContains(t, err, "certificate signed by unknown authority")

		// SIGHUP-style reload picks up a new certificate for new connections.
		newCert, newKey := ca.issue(t, 20, true)
		writeFile(t, cfg.TLS.CertFile, newCert)
		writeFile(t, cfg.TLS.KeyFile, newKey)
		require.NoError(t, h.svc.Reload())
		c := tlsClient(ca, nil)
		resp, err := c.Get(h.url + "/-/healthy")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, int64(20), resp.TLS.PeerCertificates[0].SerialNumber.Int64())

		// A broken file on reload keeps the current certificate.
		writeFile(t, cfg.TLS.KeyFile, []byte("garbage"))
		require.ErrorContains(t, h.svc.Reload(), "load tls certificate")
		resp, err = tlsClient(ca, nil).Get(h.url + "/-/healthy")
		require.NoError(t, err)
		require.NoError(t, resp.Body.Close())
		require.Equal(t, int64(20), resp.TLS.PeerCertificates[0].SerialNumber.Int64())
		writeFile(t, cfg.TLS.KeyFile, newKey)
	})

	t.Run("mtls", func(t *testing.T) {
		cfg := testConfig()
		cfg.TLS = TLSConfig{
			CertFile:     filepath.Join(dir, "server.pem"),
			KeyFile:      filepath.Join(dir, "server-key.pem"),
			ClientCAFile: filepath.Join(dir, "ca.pem"),
		}
		pub := &fakePublisher{}
		h := start(t, cfg, Options{Publisher: pub})
		require.Equal(t, 200, h.do(t, tlsClient(ca, &clientCert), creds).code)
		require.Len(t, pub.published(), 1)

		for name, c := range map[string]*http.Client{
			"no client certificate":     tlsClient(ca, nil),
			"certificate of another CA": tlsClient(ca, &strangerCert),
		} {
			req, err := http.NewRequest(http.MethodPost, h.url+Path, nil)
			require.NoError(t, err)
			resp, err := c.Do(req)
			if err == nil {
				require.NoError(t, resp.Body.Close())
			}
			require.Error(t, err, name)
		}
		require.Len(t, pub.published(), 1)
	})

	t.Run("bad client ca", func(t *testing.T) {
		cfg := testConfig()
		writeFile(t, filepath.Join(dir, "empty-ca.pem"), []byte("not pem"))
		cfg.TLS = TLSConfig{
			CertFile:     filepath.Join(dir, "server.pem"),
			KeyFile:      filepath.Join(dir, "server-key.pem"),
			ClientCAFile: filepath.Join(dir, "empty-ca.pem"),
		}
		_, err := New(cfg, Options{Publisher: &fakePublisher{}})
		require.ErrorContains(t, err, "no PEM certificates")
	})
}
