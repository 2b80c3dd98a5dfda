package natsauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/dagmm/dagmm/internal/natstest"
)

// runServer starts an in-process nats-server with the options edit sets.
func runServer(t *testing.T, edit func(*server.Options)) *server.Server {
	t.Helper()
	return natstest.StartServer(t, natstest.Options{Edit: edit})
}

// writeFile writes data to name in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// connectWith connects to url with c's options and a round trip.
func connectWith(url string, c Config) error {
	opts, err := c.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(url, append(opts, nats.Timeout(5*time.Second))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	return nc.Flush()
}

// authCase is a connection that must succeed (wantErr empty) or fail with
// an error holding wantErr.
type authCase struct {
	name    string
	cfg     Config
	wantErr string
}

func runCases(t *testing.T, url string, cases []authCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := connectWith(url, tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("connect: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("connected; want an error with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)):
				t.Fatalf("error %q; want one with %q", err, tt.wantErr)
			}
		})
	}
}

func TestToken(t *testing.T) {
	srv := runServer(t, func(o *server.Options) { o.Authorization = "s3cret" })
	runCases(t, srv.ClientURL(), []authCase{
		{"right token", Config{Token: "s3cret"}, ""},
		{"wrong token", Config{Token: "guess"}, "authorization violation"},
		{"none", Config{}, "authorization violation"},
	})
}

func TestUserPassword(t *testing.T) {
	srv := runServer(t, func(o *server.Options) { o.Username, o.Password = "dagmm", "pa55" })
	runCases(t, srv.ClientURL(), []authCase{
		{"right password", Config{User: "dagmm", Password: "pa55"}, ""},
		{"wrong password", Config{User: "dagmm", Password: "guess"}, "authorization violation"},
		{"password without user", Config{Password: "pa55"}, "a password without a user"},
	})
}

func TestNKey(t *testing.T) {
	dir := t.TempDir()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	srv := runServer(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	runCases(t, srv.ClientURL(), []authCase{
		{"right seed", Config{NKeyFile: writeFile(t, dir, "user.nk", seed)}, ""},
		{"another user's seed", Config{NKeyFile: writeFile(t, dir, "other.nk", otherSeed)}, "authorization violation"},
		{"missing file", Config{NKeyFile: filepath.Join(dir, "absent.nk")}, "nkey seed file: open"},
		{"not a seed", Config{NKeyFile: writeFile(t, dir, "junk.nk", []byte("hello\n"))}, "nkey seed file"},
	})
}

// TestCreds runs a server in operator mode (a trusted operator key, an
// account JWT in a memory resolver) and connects with a user's creds file.
func TestCreds(t *testing.T) {
	dir := t.TempDir()
	operator, _ := nkeys.CreateOperator()
	opub, _ := operator.PublicKey()
	account, _ := nkeys.CreateAccount()
	apub, _ := account.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	creds := func(signer nkeys.KeyPair) []byte {
		user, _ := nkeys.CreateUser()
		upub, _ := user.PublicKey()
		useed, _ := user.Seed()
		ujwt, err := jwt.NewUserClaims(upub).Encode(signer)
		if err != nil {
			t.Fatal(err)
		}
		b, err := jwt.FormatUserConfig(ujwt, useed)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stranger, _ := nkeys.CreateAccount() // not known to the server
	srv := runServer(t, func(o *server.Options) {
		o.TrustedKeys = []string{opub}
		o.AccountResolver = &server.MemAccResolver{}
	})
	if err := srv.AccountResolver().Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	runCases(t, srv.ClientURL(), []authCase{
		{"user of the account", Config{CredsFile: writeFile(t, dir, "user.creds", creds(account))}, ""},
		{"user of an unknown account", Config{CredsFile: writeFile(t, dir, "stranger.creds", creds(stranger))}, "authorization violation"},
		{"missing file", Config{CredsFile: filepath.Join(dir, "absent.creds")}, "creds file: open"},
		{"not a creds file", Config{CredsFile: writeFile(t, dir, "junk.creds", []byte("hello\n"))}, "no nkey seed found"},
		{"none", Config{}, "authorization violation"},
	})
}

// pki is a CA and the certificates it signed, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

// newPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, to dir, under names starting with prefix.
func newPKI(t *testing.T, dir, prefix string) pki {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: prefix + " test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, prefix+name+".pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			writeFile(t, dir, prefix+name+"-key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	}
	var p pki
	p.ca = writeFile(t, dir, prefix+"ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestTLS runs a server that verifies clients against a CA, and connects
// with the CA and a client certificate.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "")
	rogue := newPKI(t, dir, "rogue-")
	srv := runServer(t, func(o *server.Options) {
		tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: p.serverCert, KeyFile: p.serverKey, CaFile: p.ca, Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		o.TLSConfig, o.TLS, o.TLSVerify, o.TLSTimeout = tc, true, true, 2
	})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	runCases(t, url, []authCase{
		{"CA and client certificate", Config{TLSCA: p.ca, TLSCert: p.clientCert, TLSKey: p.clientKey}, ""},
		{"no client certificate", Config{TLSCA: p.ca}, "tls"},
		{"another CA", Config{TLSCA: rogue.ca, TLSCert: p.clientCert, TLSKey: p.clientKey}, "certificate signed by unknown authority"},
		{"a certificate of another CA", Config{TLSCA: p.ca, TLSCert: rogue.clientCert, TLSKey: rogue.clientKey}, "tls"},
		{"key without certificate", Config{TLSCA: p.ca, TLSKey: p.clientKey}, "a TLS client key without its certificate"},
		{"certificate without key", Config{TLSCA: p.ca, TLSCert: p.clientCert}, "a TLS client certificate without its key"},
		{"missing CA file", Config{TLSCA: filepath.Join(dir, "absent.pem")}, "TLS CA file: open"},
		{"certificate with another key", Config{TLSCA: p.ca, TLSCert: p.clientCert, TLSKey: rogue.clientKey}, "private key does not match"},
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr string
	}{
		{Config{}, ""},
		{Config{Token: "t", User: "u"}, "a token and a user: give one way"},
		{Config{CredsFile: "x", NKeyFile: "y"}, "a creds file and an nkey seed file"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.cfg, err, tt.wantErr)
		}
	}
}

func TestFlagsAndRedacted(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	c.AddFlags(fs)
	if err := fs.Parse([]string{"--nats-user=u", "--nats-password=p", "--nats-tls-ca=ca.pem"}); err != nil {
		t.Fatal(err)
	}
	if c.User != "u" || c.Password != "p" || c.TLSCA != "ca.pem" || !c.Set() {
		t.Fatalf("flags gave %+v", c)
	}
	if r := c.Redacted(); r.Password != "(set)" || r.User != "u" {
		t.Errorf("Redacted() = %+v", r)
	}
	if (Config{}).Set() {
		t.Error("the zero Config is Set")
	}
}
