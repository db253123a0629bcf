// Package awskms owns the AWS KMS key wrapper: data keys are generated or
// wrapped by a KMS key, with the secret's name and context sent as the KMS
// encryption context, and unwrapped with Decrypt pinned to that key.
package awskms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/backoff"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/loopback"
)

// KeyIDPrefix starts the id of every AWS KMS key: "awskms:" and the key ARN.
const KeyIDPrefix = "awskms:"

// NameContextKey is the encryption-context key that carries the secret's
// name, so a key policy can allow a workload its own secrets only, e.g.
// "kms:EncryptionContext:secrets-broker:name": "billing/*".
const NameContextKey = envelope.ReservedPrefix + "name"

// FormatContextKey labels every encryption context with the envelope
// format, so a grant or CloudTrail query can tell secrets-broker's data keys
// from any other use of the key, and a data key wrapped for another format
// never opens here.
const FormatContextKey = envelope.ReservedPrefix + "format"

// FormatContextValue is the label of format v1.
const FormatContextValue = "sbe1"

// DefaultMaxAttempts is how many times a throttled or failed call is tried.
const DefaultMaxAttempts = 6

var (
	_ envelope.KeyWrapper       = (*Key)(nil)
	_ envelope.DataKeyGenerator = (*Key)(nil)
)

// API is the part of the KMS client the wrapper uses.
type API interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Encrypt(ctx context.Context, in *kms.EncryptInput, optFns ...func(*kms.Options)) (*kms.EncryptOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

// Key wraps data keys with one KMS key.
type Key struct {
	arn    string
	client API
}

// ParseARN checks that arn names a KMS key (not an alias: Decrypt must be
// pinned to a key) and returns its region.
func ParseARN(arn string) (region string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "kms" || parts[3] == "" || !strings.HasPrefix(parts[5], "key/") || len(parts[5]) == len("key/") {
		return "", fail.Mark(fail.Usage, fmt.Errorf("AWS KMS key %q is not a key ARN; want arn:aws:kms:REGION:ACCOUNT:key/KEY-ID", arn))
	}
	return parts[3], nil
}

// New makes a wrapper for the key ARN with the standard AWS configuration
// (credential chain, AWS_ENDPOINT_URL_KMS and the shared config file's
// endpoint settings). The region comes from the ARN, so keys in several
// regions can wrap the same secret.
func New(ctx context.Context, arn string, optFns ...func(*kms.Options)) (*Key, error) {
	region, err := ParseARN(arn)
	if err != nil {
		return nil, err
	}
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, fail.Mark(fail.KeyUnavailable, fmt.Errorf("AWS KMS key %s: cannot load the AWS configuration: %w", arn, err))
	}
	return NewFromConfig(arn, cfg, optFns...)
}

// NewFromConfig makes a wrapper with an AWS configuration the caller built.
// Calls are retried on throttling and transient errors by the SDK's standard
// retryer, up to DefaultMaxAttempts times, waiting as the broker's one
// backoff policy says (full jitter, ceiling 100 ms doubling to 5 s).
func NewFromConfig(arn string, cfg aws.Config, optFns ...func(*kms.Options)) (*Key, error) {
	region, err := ParseARN(arn)
	if err != nil {
		return nil, err
	}
	opts := append([]func(*kms.Options){func(o *kms.Options) {
		o.Region = region
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = DefaultMaxAttempts
			so.MaxBackoff = retryBackoff().Max
			so.Backoff = fullJitter{retryBackoff()}
		})
	}}, optFns...)
	client := kms.NewFromConfig(cfg, opts...)
	if ep := client.Options().BaseEndpoint; ep != nil {
		if err := checkEndpoint(*ep); err != nil {
			return nil, fmt.Errorf("AWS KMS key %s: %w", arn, err)
		}
	}
	return &Key{arn: arn, client: client}, nil
}

// checkEndpoint refuses an endpoint override (AWS_ENDPOINT_URL_KMS, the
// shared config's endpoint_url) over plain HTTP off loopback: data keys
// and the request signatures would cross the network in clear.
func checkEndpoint(ep string) error {
	u, err := url.Parse(ep)
	if err != nil || u.Scheme != "http" {
		return nil
	}
	if loopback.Host(u.Hostname()) {
		return nil
	}
	return fail.Mark(fail.Usage, fmt.Errorf("the KMS endpoint %s is plain HTTP: data keys would cross the network in clear. Use https:// (plain http is allowed on loopback only, for a local stand-in)", u.Redacted()))
}

// retryBackoff spaces KMS retries.
func retryBackoff() backoff.Policy {
	return backoff.Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}
}

// fullJitter adapts a backoff.Policy to the SDK's retryer (whose attempts
// count from 1).
type fullJitter struct{ p backoff.Policy }

func (j fullJitter) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	return j.p.Delay(max(attempt-1, 0)), nil
}

// LogRetries is a KMS client option that logs every retried call at
// warning level with the next delay (the retryer must be set first, as
// NewFromConfig does).
func LogRetries(log *slog.Logger) func(*kms.Options) {
	return func(o *kms.Options) {
		if log != nil && o.Retryer != nil {
			o.Retryer = loggingRetryer{Retryer: o.Retryer, log: log}
		}
	}
}

type loggingRetryer struct {
	aws.Retryer
	log *slog.Logger
}

func (r loggingRetryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	d, derr := r.Retryer.RetryDelay(attempt, err)
	if derr == nil {
		r.log.Warn("AWS KMS call failed; retrying", "attempt", attempt, "retry_in", d.Round(time.Millisecond).String(), "error", err)
	}
	return d, derr
}

// NewWithClient makes a wrapper around any KMS API implementation.
func NewWithClient(arn string, client API) (*Key, error) {
	if _, err := ParseARN(arn); err != nil {
		return nil, err
	}
	return &Key{arn: arn, client: client}, nil
}

// KeyID returns "awskms:" and the key ARN.
func (k *Key) KeyID() string { return KeyIDPrefix + k.arn }

// EncryptionContext is what KMS sees for binding b: its context, the
// secret's name under NameContextKey and the format label under
// FormatContextKey (user context keys cannot use the reserved prefix). It
// appears in CloudTrail, so it never holds a secret.
func EncryptionContext(b envelope.Binding) map[string]string {
	ec := make(map[string]string, len(b.Context)+2)
	for k, v := range b.Context {
		ec[k] = v
	}
	ec[NameContextKey] = b.Name
	ec[FormatContextKey] = FormatContextValue
	return ec
}

// GenerateDataKey asks KMS for a fresh AES-256 data key, wrapped for b.
func (k *Key) GenerateDataKey(ctx context.Context, b envelope.Binding) ([]byte, []byte, error) {
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(k.arn),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: EncryptionContext(b),
	})
	if err != nil {
		return nil, nil, k.explain("GenerateDataKey", b, err)
	}
	return out.Plaintext, out.CiphertextBlob, nil
}

// WrapKey encrypts a data key under the KMS key for b.
func (k *Key) WrapKey(ctx context.Context, dataKey []byte, b envelope.Binding) ([]byte, error) {
	out, err := k.client.Encrypt(ctx, &kms.EncryptInput{
		KeyId:             aws.String(k.arn),
		Plaintext:         dataKey,
		EncryptionContext: EncryptionContext(b),
	})
	if err != nil {
		return nil, k.explain("Encrypt", b, err)
	}
	return out.CiphertextBlob, nil
}

// UnwrapKey decrypts a data key, pinning KeyId so that KMS refuses a blob
// made under any other key.
func (k *Key) UnwrapKey(ctx context.Context, wrapped []byte, b envelope.Binding) ([]byte, error) {
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		KeyId:             aws.String(k.arn),
		CiphertextBlob:    wrapped,
		EncryptionContext: EncryptionContext(b),
	})
	if err != nil {
		return nil, k.explain("Decrypt", b, err)
	}
	if out.KeyId != nil && *out.KeyId != k.arn {
		clear(out.Plaintext)
		return nil, fail.Mark(fail.Integrity, fmt.Errorf("AWS KMS answered Decrypt for secret %q with key %s, not the pinned %s", b.Name, *out.KeyId, k.arn))
	}
	return out.Plaintext, nil
}

// explain turns a KMS error into a sentence that names the key, the secret
// and what to do, classified for exit codes and retries.
func (k *Key) explain(op string, b envelope.Binding, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		code := api.ErrorCode()
		switch code {
		case "AccessDeniedException":
			return fail.Mark(fail.KeyUnavailable, fmt.Errorf("AWS KMS denied kms:%s on key %s for secret %q: allow it in the key or IAM policy (the request's encryption context has %s=%s): %s",
				op, k.arn, b.Name, NameContextKey, b.Name, api.ErrorMessage()))
		case "NotFoundException":
			return fail.Mark(fail.KeyUnavailable, fmt.Errorf("AWS KMS key %s (secret %q) does not exist in its region", k.arn, b.Name))
		case "DisabledException", "KMSInvalidStateException", "KeyUnavailableException":
			return fail.Mark(fail.KeyUnavailable, fmt.Errorf("AWS KMS key %s (secret %q) cannot be used now (%s): enable it or cancel its deletion", k.arn, b.Name, code))
		case "InvalidCiphertextException", "IncorrectKeyException":
			return fail.Mark(fail.Integrity, fmt.Errorf("AWS KMS key %s, secret %q: %w (%s)", k.arn, b.Name, envelope.ErrDecrypt, code))
		case "ThrottlingException", "LimitExceededException", "KMSInternalException", "DependencyTimeoutException":
			return fail.Mark(fail.Unavailable, fmt.Errorf("AWS KMS %s on key %s for secret %q failed after retries (%s): try again later", op, k.arn, b.Name, code))
		}
		return fail.Mark(fail.KeyUnavailable, fmt.Errorf("AWS KMS %s on key %s for secret %q failed: %s: %s", op, k.arn, b.Name, code, api.ErrorMessage()))
	}
	return fail.Mark(fail.Unavailable, fmt.Errorf("AWS KMS %s on key %s for secret %q: cannot reach KMS: %w", op, k.arn, b.Name, err))
}
