package oidctest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// store is zitadel's example storage (for the parts of op.Storage the
// client_credentials grant does not use: its signing key and JWKS among
// them) with the grant's own parts replaced.
type store struct {
	*storage.Storage

	mu      sync.Mutex
	clients map[string]*Client
	issued  map[string]issued
}

type issued struct {
	clientID string
	scopes   []string
	expires  time.Time
}

func (s *store) client(id string) *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clients[id]
}

// ClientCredentials authenticates a client by secret (op.ClientCredentialsStorage).
func (s *store) ClientCredentials(_ context.Context, clientID, clientSecret string) (op.Client, error) {
	c := s.client(clientID)
	if c == nil || c.Secret != clientSecret {
		return nil, errors.New("wrong client or secret")
	}
	return opClient{c}, nil
}

// ClientCredentialsTokenRequest is the token the client asks for; a scope
// it may not have is invalid_scope.
func (s *store) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	c := s.client(clientID)
	if c == nil {
		return nil, oidc.ErrInvalidClient()
	}
	for _, sc := range scopes {
		if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, sc) {
			return nil, oidc.ErrInvalidScope().WithDescription("scope %s is not allowed for this client", sc)
		}
	}
	return &oidc.JWTTokenRequest{Subject: clientID, Audience: []string{clientID}, Scopes: scopes}, nil
}

// AuthorizeClientIDSecret authenticates a client by secret for the token
// exchange grant and introspection.
func (s *store) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	if c := s.client(clientID); c == nil || c.Secret != clientSecret {
		return errors.New("wrong client or secret")
	}
	return nil
}

// ValidateTokenExchangeRequest allows every exchange of a token this
// provider issued, for an access token (the default), with the scopes
// asked for.
func (s *store) ValidateTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) error {
	if req.GetRequestedTokenType() == "" {
		req.SetRequestedTokenType(oidc.AccessTokenType)
	}
	if req.GetRequestedTokenType() != oidc.AccessTokenType {
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are issued here")
	}
	req.SetCurrentScopes(req.GetScopes())
	return nil
}

// CreateAccessToken records a token with its client's lifetime (for an
// exchange, the client that asked).
func (s *store) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	id := make([]byte, 16)
	rand.Read(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	clientID := req.GetSubject()
	if x, ok := req.(op.TokenExchangeRequest); ok {
		clientID = x.GetClientID()
	}
	c := s.clients[clientID]
	if c == nil {
		return "", time.Time{}, oidc.ErrInvalidClient()
	}
	exp := time.Now().Add(c.Lifetime)
	s.issued[hex.EncodeToString(id)] = issued{clientID: c.ID, scopes: req.GetScopes(), expires: exp}
	return hex.EncodeToString(id), exp, nil
}

// GetClientByClientID finds this package's clients first.
func (s *store) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if c := s.client(id); c != nil {
		return opClient{c}, nil
	}
	return s.Storage.GetClientByClientID(ctx, id)
}

// opClient is a Client as zitadel sees it: a service that may use only the
// client_credentials grant and gets JWT access tokens.
type opClient struct{ c *Client }

func (o opClient) GetID() string                       { return o.c.ID }
func (o opClient) RedirectURIs() []string              { return nil }
func (o opClient) PostLogoutRedirectURIs() []string    { return nil }
func (o opClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (o opClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (o opClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (o opClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
}
func (o opClient) LoginURL(string) string               { return "" }
func (o opClient) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (o opClient) IDTokenLifetime() time.Duration       { return time.Hour }
func (o opClient) DevMode() bool                        { return false }
func (o opClient) IsScopeAllowed(string) bool           { return true }
func (o opClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (o opClient) ClockSkew() time.Duration             { return 0 }
func (o opClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (o opClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
