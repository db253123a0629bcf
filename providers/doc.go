// Package providers holds what secrets-broker talks to for keys and secrets.
// Each key source is one implementation of envelope.KeyWrapper, in its own
// package:
//
//   - providers/local: a key file on disk (the default; no service needed)
//   - providers/awskms: an AWS KMS key
//   - providers/transit: a HashiCorp Vault Transit key
//
// providers/vault reads secrets from HashiCorp Vault. This package itself
// owns what the wrappers share: a bounded cache of unwrapped data keys and the
// parser for key ids given by users.
package providers
