package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/hashicorp/vault/api"

	"github.com/secrets-broker/secrets-broker/internal/certreload"
	"github.com/secrets-broker/secrets-broker/internal/fail"
)

// CertAuth logs in with the TLS client certificate the client presents
// (vault.client_cert and vault.client_key), to Vault's cert auth method.
// The files are read again whenever they change and every login starts a
// fresh TLS connection, so a rotated certificate is the one Vault sees at
// the next login.
type CertAuth struct {
	Mount    string // default "cert"
	Name     string // the certificate role; "" lets Vault pick the role that matches
	CertFile string
	KeyFile  string
}

// Describe names the method.
func (c CertAuth) Describe() string {
	if c.Name == "" {
		return "cert (certificate " + c.CertFile + ")"
	}
	return "cert (role " + c.Name + ")"
}

func (c CertAuth) mount() string {
	if c.Mount == "" {
		return "cert"
	}
	return c.Mount
}

// Principal is the certificate's subject and issuer (which stay the same
// as it is renewed) and the role.
func (c CertAuth) Principal() (string, error) {
	cert, err := certreload.New(c.CertFile, c.KeyFile).Load()
	if err != nil {
		return "", err
	}
	return principalOf("cert", c.mount(), c.Name, string(cert.Leaf.RawSubject), string(cert.Leaf.RawIssuer)), nil
}

// Login logs in over a new TLS connection.
func (c CertAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	if c.CertFile == "" || c.KeyFile == "" {
		return nil, fail.Mark(fail.Usage, errors.New("vault login with cert: no client certificate: set vault.client_cert and vault.client_key (or auth.client_cert and auth.client_key)"))
	}
	// The certificate on disk now must be readable: say so in the
	// config's words rather than as a failed handshake.
	if _, err := certreload.New(c.CertFile, c.KeyFile).Load(); err != nil {
		return nil, fmt.Errorf("vault login with %s: %w", c.Describe(), err)
	}
	// Idle connections carry the certificate they were opened with.
	client.CloneConfig().HttpClient.CloseIdleConnections()
	body := map[string]any{}
	if c.Name != "" {
		body["name"] = c.Name
	}
	return writeLogin(ctx, client, c, "auth/"+c.mount()+"/login", body)
}

// AWSAuth logs in to Vault's aws auth method, IAM type: it signs an
// sts:GetCallerIdentity request with the credentials of the standard AWS
// chain (environment, shared files, web identity, ECS and EC2 roles) and
// hands it to Vault, which sends it to STS to learn whom it is from. The
// AWS credentials themselves never leave the process.
type AWSAuth struct {
	Mount string // default "aws"
	Role  string // the Vault role; "" lets Vault use the IAM role's name
	// Region picks the STS endpoint and signing region (default
	// us-east-1, whose endpoint is the global sts.amazonaws.com).
	Region string
	// ServerID is the X-Vault-AWS-IAM-Server-ID header value, signed into
	// the request so that it cannot be replayed to another Vault (the
	// mount's iam_server_id_header_value).
	ServerID string
	// Credentials overrides the standard chain (tests, a pinned profile).
	Credentials aws.CredentialsProvider

	once  *sync.Once
	creds *aws.CredentialsProvider
	err   *error
}

// NewAWSAuth returns an AWS IAM login.
func NewAWSAuth(a AWSAuth) *AWSAuth {
	a.once = &sync.Once{}
	a.creds = new(aws.CredentialsProvider)
	a.err = new(error)
	return &a
}

// Describe names the method.
func (a *AWSAuth) Describe() string {
	if a.Role == "" {
		return "aws (iam)"
	}
	return "aws (iam, role " + a.Role + ")"
}

func (a *AWSAuth) mount() string {
	if a.Mount == "" {
		return "aws"
	}
	return a.Mount
}

func (a *AWSAuth) region() string {
	if a.Region == "" {
		return "us-east-1"
	}
	return a.Region
}

// stsURL is the STS endpoint for the region: the global one for
// us-east-1, as AWS's SDKs and Vault Agent use by default.
func (a *AWSAuth) stsURL() string {
	if r := a.region(); r != "us-east-1" {
		return "https://sts." + r + ".amazonaws.com/"
	}
	return "https://sts.amazonaws.com/"
}

// Principal is the Vault role, mount and server ID: the AWS credentials
// rotate (an instance role's every hour) while naming the same role.
func (a *AWSAuth) Principal() (string, error) {
	return principalOf("aws", a.mount(), a.Role, a.ServerID), nil
}

func (a *AWSAuth) provider(ctx context.Context) (aws.CredentialsProvider, error) {
	if a.Credentials != nil {
		return a.Credentials, nil
	}
	a.once.Do(func() {
		cfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(a.region()))
		if err != nil {
			// The SDK's text may quote the shared files; it is not shown.
			*a.err = fail.Mark(fail.Usage, fmt.Errorf("vault login with %s: the AWS configuration does not load (%s): check AWS_PROFILE, AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE", a.Describe(), errorType(err)))
			return
		}
		*a.creds = cfg.Credentials
	})
	return *a.creds, *a.err
}

// stsBody is the signed request's body: GetCallerIdentity, nothing else.
const stsBody = "Action=GetCallerIdentity&Version=2011-06-15"

// Login signs the request and logs in.
func (a *AWSAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	prov, err := a.provider(ctx)
	if err != nil {
		return nil, err
	}
	if prov == nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault login with %s: no AWS credentials found: give the workload an IAM role (instance profile, ECS task role, EKS pod identity) or set AWS_* credentials", a.Describe()))
	}
	creds, err := prov.Retrieve(ctx)
	if err != nil {
		// Never the SDK's text: a credential_process whose output does
		// not parse has the whole output, keys included, in its error.
		return nil, fail.Mark(fail.Denied, fmt.Errorf("vault login with %s: no AWS credentials could be retrieved from the standard chain (%s; its text is not shown, it can hold credentials): check the AWS_* variables, the shared files' profile and credential_process, or the workload's IAM role", a.Describe(), errorType(err)))
	}
	data, err := a.signedRequest(ctx, creds, time.Now())
	if err != nil {
		return nil, err
	}
	return writeLogin(ctx, client, a, "auth/"+a.mount()+"/login", data)
}

// signedRequest is the login's body: the signed GetCallerIdentity request,
// as Vault's aws method reads it.
func (a *AWSAuth) signedRequest(ctx context.Context, creds aws.Credentials, now time.Time) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.stsURL(), strings.NewReader(stsBody))
	if err != nil {
		return nil, fail.Mark(fail.Usage, fmt.Errorf("vault login with %s: region %q does not make an STS address: %w", a.Describe(), a.Region, err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if a.ServerID != "" {
		req.Header.Set("X-Vault-AWS-IAM-Server-ID", a.ServerID)
	}
	sum := sha256.Sum256([]byte(stsBody))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sts", a.region(), now); err != nil {
		return nil, fmt.Errorf("vault login with %s: cannot sign the STS request: %w", a.Describe(), err)
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"iam_http_request_method": http.MethodPost,
		"iam_request_url":         base64.StdEncoding.EncodeToString([]byte(a.stsURL())),
		"iam_request_body":        base64.StdEncoding.EncodeToString([]byte(stsBody)),
		"iam_request_headers":     base64.StdEncoding.EncodeToString(headers),
	}
	if a.Role != "" {
		data["role"] = a.Role
	}
	return data, nil
}

// PasswordAuth logs in to Vault's userpass or ldap method with a username
// and a password read from a file at every login (never from the config
// or the command line).
type PasswordAuth struct {
	Method       string // "userpass" or "ldap"
	Mount        string // default: Method
	Username     string
	PasswordFile string
}

// Describe names the method and user.
func (p PasswordAuth) Describe() string { return p.Method + " (user " + p.Username + ")" }

func (p PasswordAuth) mount() string {
	if p.Mount == "" {
		return p.Method
	}
	return p.Mount
}

// Principal is the method, mount and username: the password rotates.
func (p PasswordAuth) Principal() (string, error) {
	return principalOf(p.Method, p.mount(), p.Username), nil
}

// Login logs in.
func (p PasswordAuth) Login(ctx context.Context, client *api.Client) (*api.Secret, error) {
	pw, err := readCredFile(p.Method+" password", p.PasswordFile)
	if err != nil {
		return nil, err
	}
	return writeLogin(ctx, client, p, "auth/"+p.mount()+"/login/"+url.PathEscape(p.Username), map[string]any{"password": pw})
}

// errorType names the innermost error's type, for a message that must not
// carry the error's text.
func errorType(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return fmt.Sprintf("%T", err)
		}
		err = next
	}
}
