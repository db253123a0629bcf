// Package envelope owns the secrets-broker envelope format, version 1: how one
// secret is sealed under a fresh data key, how that data key is wrapped by one
// or more key wrappers, how the result is bound to the secret's name and
// context, and how envelopes are laid out as bytes, as compact text, and as
// secrets files of many named entries.
//
// The format is written down in docs/envelope.md; test vectors, including
// vectors that must fail, live in testdata/.
//
// The package does no I/O of its own. Key services live behind the small
// [KeyWrapper] interface; implementations are in providers/.
package envelope
