package awskms_test

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/secrets-broker/secrets-broker/providers/awskms"
)

// retryQuick keeps the SDK's standard retryer and attempt count but shortens
// its backoff, so the throttling tests take milliseconds.
func retryQuick(aws.Retryer) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = awskms.DefaultMaxAttempts
		o.MaxBackoff = 10 * time.Millisecond
		o.RateLimiter = ratelimit.None
	})
}
