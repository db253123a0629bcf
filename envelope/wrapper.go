package envelope

import "context"

// KeyWrapper protects data keys with a key the caller never sees: a local key
// file, an AWS KMS key, a Vault Transit key.
//
// WrapKey and UnwrapKey must authenticate the binding: unwrapping with a
// binding other than the one used to wrap must fail. Implementations mark
// their errors with the classes of internal/fail (an authentication failure
// of the wrapped key is fail.Integrity; a refusal is fail.KeyUnavailable; an
// unreachable service is fail.Unavailable), and never put key material in an
// error.
type KeyWrapper interface {
	// KeyID names the key, for example "local:3f2a…", "awskms:arn:aws:kms:…"
	// or "transit:transit/app". It is stored in the clear in envelopes.
	KeyID() string
	// WrapKey seals a data key for binding b.
	WrapKey(ctx context.Context, dataKey []byte, b Binding) ([]byte, error)
	// UnwrapKey opens a data key that WrapKey sealed for binding b.
	UnwrapKey(ctx context.Context, wrapped []byte, b Binding) ([]byte, error)
}

// DataKeyGenerator is implemented by wrappers whose service creates and wraps
// a data key in one call (AWS KMS GenerateDataKey). When the first wrapper
// given to [Seal] implements it, the data key comes from that service.
type DataKeyGenerator interface {
	GenerateDataKey(ctx context.Context, b Binding) (dataKey, wrapped []byte, err error)
}
