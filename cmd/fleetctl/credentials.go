package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// credentials are how fleetctl proves who it is and checks whom it talks to. Each comes from
// its flag, else its environment variable, else the config context.
type credentials struct {
	token, tokenFile, ca, cert, key string
}

func (c *credentials) flags(f *pflag.FlagSet) {
	f.StringVar(&c.token, "token", "", "bearer token (default $EBBFLOW_TOKEN)")
	f.StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token, e.g. <data-dir>/pki/admin.token (default $EBBFLOW_TOKEN_FILE)")
	f.StringVar(&c.ca, "ca", "", "the controller's CA bundle (PEM), e.g. <data-dir>/pki/ca.crt (default $EBBFLOW_CA; else the system roots)")
	f.StringVar(&c.cert, "cert", "", "client certificate (PEM) instead of a token (default $EBBFLOW_CERT)")
	f.StringVar(&c.key, "key", "", "key of --cert (PEM) (default $EBBFLOW_KEY)")
}

func pick(flag, env, ctx string) string {
	if flag != "" {
		return flag
	}
	if v := os.Getenv(env); v != "" {
		return v
	}
	return ctx
}

// resolve returns the bearer token to send, "" for none: --token, --token-file,
// $EBBFLOW_TOKEN, $EBBFLOW_TOKEN_FILE, then the context's token or token file.
func (c *credentials) resolve(ctx *contextConfig) (string, error) {
	if ctx == nil {
		ctx = &contextConfig{}
	}
	if c.token != "" && c.tokenFile != "" {
		return "", usageErr("--token and --token-file: give one")
	}
	for _, src := range []struct{ token, file string }{
		{c.token, c.tokenFile}, {os.Getenv("EBBFLOW_TOKEN"), os.Getenv("EBBFLOW_TOKEN_FILE")}, {ctx.Token, ctx.TokenFile},
	} {
		if src.token != "" {
			return src.token, nil
		}
		if src.file == "" {
			continue
		}
		b, err := os.ReadFile(src.file)
		if err != nil {
			return "", usageErr("token file: %v", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", usageErr("token file %s is empty", src.file)
	}
	return "", nil
}

// httpClient trusts the CA (when given) and presents the client certificate (when given).
func (c *credentials) httpClient(ctx *contextConfig) (*http.Client, error) {
	if ctx == nil {
		ctx = &contextConfig{}
	}
	ca := pick(c.ca, "EBBFLOW_CA", ctx.CA)
	cert, key := pick(c.cert, "EBBFLOW_CERT", ctx.Cert), pick(c.key, "EBBFLOW_KEY", ctx.Key)
	if (cert == "") != (key == "") {
		return nil, usageErr("--cert and --key go together")
	}
	if ca == "" && cert == "" {
		return &http.Client{}, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, usageErr("--ca: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usageErr("--ca: no PEM certificate in %s", ca)
		}
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usageErr("--cert/--key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	tr.ForceAttemptHTTP2 = true
	return &http.Client{Transport: tr}, nil
}
