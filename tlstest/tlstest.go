// Package tlstest makes a throwaway certificate authority and the server
// and client certificates it signs, for tests of TLS and mutual TLS
// listeners (kcluster.TLS). Keys are ECDSA P-256, certificates are valid
// for a day from an hour ago, and nothing touches the disk.
//
// It is a package of its own, as net/http/httptest is, so the root
// package's API stays about clusters and so cmd/kcluster and any test can
// use it.
package tlstest

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
	"time"
)

// CA is a certificate authority. Its zero value is not usable: use NewCA.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

// NewCA makes a self-signed CA named "kcluster test CA".
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := template(pkix.Name{CommonName: "kcluster test CA"})
	tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, pool: pool}, nil
}

func template(subject pkix.Name) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	return &x509.Certificate{SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
}

// Pool returns a pool holding the CA's certificate.
func (ca *CA) Pool() *x509.CertPool { return ca.pool }

// CertPEM returns the CA's certificate in PEM, for clients outside Go.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Issue signs a certificate for subject, valid for the hosts (DNS names
// or IP addresses) as a server and as a client.
func (ca *CA) Issue(subject pkix.Name, hosts ...string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := template(subject)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ServerConfig returns a server configuration with a certificate for
// 127.0.0.1, ::1 and localhost (and any more hosts) that trusts the CA's
// client certificates when one is offered; set ClientAuth to
// tls.RequireAndVerifyClientCert (or the broker config
// ssl.client.auth=required) to require one.
func (ca *CA) ServerConfig(hosts ...string) (*tls.Config, error) {
	cert, err := ca.Issue(pkix.Name{CommonName: "kcluster broker"}, append([]string{"127.0.0.1", "::1", "localhost"}, hosts...)...)
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}, nil
}

// ClientConfig returns a client configuration that trusts the CA and,
// when commonName is not empty, presents a certificate with that common
// name (the principal kcluster gives it is "User:CN=" + commonName).
func (ca *CA) ClientConfig(commonName string) (*tls.Config, error) {
	cfg := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	if commonName != "" {
		cert, err := ca.Issue(pkix.Name{CommonName: commonName})
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
