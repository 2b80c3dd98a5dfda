// Package natsauth turns the NATS credentials and TLS settings every dagmm
// command shares (a creds file, an NKey seed, a token, a user and password,
// a CA and a client certificate) into nats.go client options, and registers
// them as command-line flags.
package natsauth

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// Config is how a client proves who it is to a NATS server and checks the
// server. The zero Config adds nothing: the URL alone (which may hold a
// token or user:password) is used. At most one of CredsFile, NKeyFile,
// Token and User may be set.
type Config struct {
	// CredsFile is a credentials file: a user JWT and its NKey seed
	// (nsc generate creds), for servers in operator mode.
	CredsFile string
	// NKeyFile is a file holding a user's NKey seed ("SU...").
	NKeyFile string
	// Token is the server's authorization token.
	Token string
	// User and Password are a user's name and password.
	User, Password string
	// TLSCA is a PEM file of the CAs the server's certificate is checked
	// against, instead of the system's.
	TLSCA string
	// TLSCert and TLSKey are PEM files of the client's certificate and
	// its private key, for servers that verify clients; both or neither.
	TLSCert, TLSKey string
}

// Options returns the client options of c, after checking that the files it
// names can be read and that the settings do not contradict each other.
func (c Config) Options() ([]nats.Option, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	switch {
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	case c.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsauth: nkey seed file %s: %w", c.NKeyFile, err)
		}
		opts = append(opts, o)
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Validate reports the first problem of c: two ways of authenticating, a
// password without a user, a key without a certificate (or the reverse),
// a file that cannot be read.
func (c Config) Validate() error {
	var ways []string
	for _, w := range []struct{ name, v string }{
		{"a creds file", c.CredsFile}, {"an nkey seed file", c.NKeyFile},
		{"a token", c.Token}, {"a user", c.User},
	} {
		if w.v != "" {
			ways = append(ways, w.name)
		}
	}
	switch {
	case len(ways) > 1:
		return fmt.Errorf("natsauth: %s: give one way to authenticate", strings.Join(ways, " and "))
	case c.Password != "" && c.User == "":
		return errors.New("natsauth: a password without a user")
	case c.TLSKey != "" && c.TLSCert == "":
		return errors.New("natsauth: a TLS client key without its certificate")
	case c.TLSCert != "" && c.TLSKey == "":
		return errors.New("natsauth: a TLS client certificate without its key")
	}
	for _, f := range []struct{ what, path string }{
		{"creds file", c.CredsFile}, {"nkey seed file", c.NKeyFile},
		{"TLS CA file", c.TLSCA}, {"TLS certificate file", c.TLSCert}, {"TLS key file", c.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		fh, err := os.Open(f.path)
		if err != nil {
			return fmt.Errorf("natsauth: %s: %w", f.what, err)
		}
		fh.Close()
	}
	return nil
}

// Set reports whether c adds anything to a connection.
func (c Config) Set() bool { return c != Config{} }

// Redacted returns c with the token and password replaced by "(set)", for
// logs.
func (c Config) Redacted() Config {
	if c.Token != "" {
		c.Token = "(set)"
	}
	if c.Password != "" {
		c.Password = "(set)"
	}
	return c
}

// AddFlags registers c's fields on fs as --nats-creds, --nats-nkey,
// --nats-token, --nats-user, --nats-password, --nats-tls-ca,
// --nats-tls-cert and --nats-tls-key.
func (c *Config) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.CredsFile, "nats-creds", c.CredsFile, "NATS credentials `file` (a user JWT and NKey seed, nsc generate creds)")
	fs.StringVar(&c.NKeyFile, "nats-nkey", c.NKeyFile, "`file` holding a NATS user's NKey seed (SU...)")
	fs.StringVar(&c.Token, "nats-token", c.Token, "NATS authorization `token` (prefer the environment variable to the flag, which other users can see)")
	fs.StringVar(&c.User, "nats-user", c.User, "NATS `user` name")
	fs.StringVar(&c.Password, "nats-password", c.Password, "NATS user's `password` (prefer the environment variable to the flag, which other users can see)")
	fs.StringVar(&c.TLSCA, "nats-tls-ca", c.TLSCA, "PEM `file` of the CAs that sign the NATS server's certificate (default: the system's)")
	fs.StringVar(&c.TLSCert, "nats-tls-cert", c.TLSCert, "PEM `file` of the client certificate shown to a NATS server that verifies clients (with --nats-tls-key)")
	fs.StringVar(&c.TLSKey, "nats-tls-key", c.TLSKey, "PEM `file` of the client certificate's private key (with --nats-tls-cert)")
}
