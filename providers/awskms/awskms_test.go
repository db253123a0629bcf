package awskms_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/kmsfake"
	"github.com/secrets-broker/secrets-broker/providers"
	"github.com/secrets-broker/secrets-broker/providers/awskms"
)

// These tests run the real aws-sdk-go-v2 KMS client against kmsfake, a test
// double of KMS on loopback (see its package comment for what it is not).

func setup(t *testing.T) (*kmsfake.Server, aws.Config) {
	t.Helper()
	srv := kmsfake.Start()
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "test-secret", ""),
		BaseEndpoint: aws.String(srv.URL),
	}
	return srv, cfg
}

func newKey(t *testing.T, cfg aws.Config, arn string) *awskms.Key {
	t.Helper()
	k, err := awskms.NewFromConfig(arn, cfg, func(o *kms.Options) {
		// Keep retries quick in tests; production uses the broker's full-jitter backoff.
		o.Retryer = retryQuick(o.Retryer)
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantKind(t *testing.T, err error, kind fail.Kind, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want a %s error, got none", kind)
	}
	if fail.KindOf(err) != kind {
		t.Fatalf("error class %s, want %s: %v", fail.KindOf(err), kind, err)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not mention %q", err, p)
		}
	}
}

func TestSealOpenMultiRegion(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	east := newKey(t, cfg, srv.CreateKey("us-east-1"))
	west := newKey(t, cfg, srv.CreateKey("eu-west-1"))
	b := envelope.Binding{Name: "billing/db_password", Context: map[string]string{"env": "prod"}}
	e, err := envelope.Seal(ctx, []byte("hunter2"), b, east, west)
	if err != nil {
		t.Fatal(err)
	}
	if srv.Calls("GenerateDataKey") != 1 || srv.Calls("Encrypt") != 1 {
		t.Fatalf("want 1 GenerateDataKey and 1 Encrypt, got %d and %d", srv.Calls("GenerateDataKey"), srv.Calls("Encrypt"))
	}
	for _, k := range []*awskms.Key{east, west} {
		got, err := e.Open(ctx, envelope.Expect{Name: b.Name}, []envelope.KeyWrapper{k})
		if err != nil || string(got) != "hunter2" {
			t.Fatalf("open with %s: %v", k.KeyID(), err)
		}
	}
	// Renamed header: KMS refuses, since the name is in the encryption context.
	e.Name = "billing/other"
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{east})
	wantKind(t, err, fail.Integrity, "InvalidCiphertextException", "billing/other")
}

func TestDecryptPinsKeyID(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	a := newKey(t, cfg, srv.CreateKey("us-east-1"))
	bArn := srv.CreateKey("us-east-1")
	b := newKey(t, cfg, bArn)
	bind := envelope.Binding{Name: "n"}
	dk, wrapped, err := a.GenerateDataKey(ctx, bind)
	if err != nil || len(dk) != 32 {
		t.Fatal(err)
	}
	// A blob made under key a, presented to the wrapper of key b.
	_, err = b.UnwrapKey(ctx, wrapped, bind)
	wantKind(t, err, fail.Integrity, "IncorrectKeyException", bArn)
}

func TestThrottlingIsRetried(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	k := newKey(t, cfg, srv.CreateKey("us-east-1"))
	e, err := envelope.Seal(ctx, []byte("v"), envelope.Binding{Name: "n"}, k)
	if err != nil {
		t.Fatal(err)
	}
	srv.Throttle(3)
	if _, err := e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k}); err != nil {
		t.Fatalf("three throttles should be retried away: %v", err)
	}
	if got := srv.Calls("Decrypt"); got != 4 {
		t.Fatalf("want 4 Decrypt calls (3 throttled + 1), got %d", got)
	}
	srv.Throttle(awskms.DefaultMaxAttempts)
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k})
	wantKind(t, err, fail.Unavailable, "ThrottlingException", `"n"`)
	if !fail.KindOf(err).Retryable() {
		t.Fatal("throttling should be retryable")
	}
}

func TestRefusalsNameKeyAndSecret(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	arn := srv.CreateKey("us-east-1")
	k := newKey(t, cfg, arn)
	e, err := envelope.Seal(ctx, []byte("topsecret"), envelope.Binding{Name: "api_key"}, k)
	if err != nil {
		t.Fatal(err)
	}
	srv.Deny(arn, true)
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k})
	wantKind(t, err, fail.KeyUnavailable, "denied", arn, `"api_key"`)
	srv.Deny(arn, false)
	srv.Disable(arn, true)
	_, err = e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k})
	wantKind(t, err, fail.KeyUnavailable, "DisabledException", arn)
	srv.Disable(arn, false)
	missing := newKey(t, cfg, "arn:aws:kms:us-east-1:111122223333:key/does-not-exist")
	_, err = envelope.Seal(ctx, []byte("x"), envelope.Binding{Name: "x"}, missing)
	wantKind(t, err, fail.KeyUnavailable, "does not exist")
	if strings.Contains(fmt.Sprint(err), "topsecret") {
		t.Fatal("secret in error")
	}
}

func TestUnreachable(t *testing.T) {
	srv, cfg := setup(t)
	arn := srv.CreateKey("us-east-1")
	srv.Close()
	k := newKey(t, cfg, arn)
	_, err := envelope.Seal(context.Background(), []byte("x"), envelope.Binding{Name: "x"}, k)
	wantKind(t, err, fail.Unavailable, "cannot reach KMS")
}

func TestBadARN(t *testing.T) {
	for _, arn := range []string{"", "alias/foo", "arn:aws:kms:us-east-1:1:alias/foo", "arn:aws:s3:::bucket"} {
		_, err := awskms.NewFromConfig(arn, aws.Config{})
		wantKind(t, err, fail.Usage, "key ARN")
	}
}

// Refreshing 1,000 unchanged secrets costs no KMS call once their data keys
// are cached; a file's entries are opened concurrently.
func TestCacheAndConcurrency(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	cache := providers.NewDataKeyCache(2000, time.Hour)
	k := cache.Wrap(newKey(t, cfg, srv.CreateKey("us-east-1")))
	if _, ok := k.(envelope.DataKeyGenerator); !ok {
		t.Fatal("cached KMS key lost GenerateDataKey")
	}
	var values []envelope.Plain
	for i := range 1000 {
		values = append(values, envelope.Plain{Name: fmt.Sprintf("s%04d", i), Value: []byte(fmt.Sprint(i))})
	}
	f, err := envelope.SealFile(ctx, values, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	data := f.MarshalYAML()
	for round := range 3 {
		p, err := envelope.ParseFile(data, "s.yaml")
		if err != nil {
			t.Fatal(err)
		}
		all, err := p.OpenAll(ctx, envelope.FileExpect{}, []envelope.KeyWrapper{k}, 16)
		if err != nil {
			t.Fatal(err)
		}
		if string(all[999].Value) != "999" {
			t.Fatal("wrong value")
		}
		const want = 1001 // 1,000 entries and the manifest, all in the first round
		if got := srv.Calls("Decrypt"); got != want {
			t.Fatalf("round %d: %d Decrypt calls in all, want %d", round, got, want)
		}
	}
	if cache.Len() != 1001 {
		t.Fatalf("cache holds %d keys", cache.Len())
	}
}

func TestOpenAllRunsKMSCallsConcurrentlyBounded(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	k := newKey(t, cfg, srv.CreateKey("us-east-1"))
	var values []envelope.Plain
	for i := range 40 {
		values = append(values, envelope.Plain{Name: fmt.Sprintf("s%02d", i), Value: []byte("v")})
	}
	f, err := envelope.SealFile(ctx, values, nil, k)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLatency(20 * time.Millisecond)
	if _, err := f.OpenAll(ctx, envelope.FileExpect{}, []envelope.KeyWrapper{k}, 6); err != nil {
		t.Fatal(err)
	}
	if got := srv.MaxInFlight(); got < 2 || got > 6 {
		t.Fatalf("at most %d Decrypt calls in flight; want 2..6", got)
	}
}

// A KMS key disabled while a daemon runs stops opening secrets once the
// cached data keys expire (the cache's TTL), and the sweep zeroes them.
func TestDisabledKeyStopsOpeningWithinCacheTTL(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	arn := srv.CreateKey("us-east-1")
	now := time.Unix(1_800_000_000, 0)
	cache := providers.NewDataKeyCache(100, time.Minute).WithClock(func() time.Time { return now })
	k := cache.Wrap(newKey(t, cfg, arn))
	e, err := envelope.Seal(ctx, []byte("s3cret"), envelope.Binding{Name: "db"}, k)
	if err != nil {
		t.Fatal(err)
	}
	open := func() error {
		_, err := e.Open(ctx, envelope.Expect{Name: "db"}, []envelope.KeyWrapper{k})
		return err
	}
	if err := open(); err != nil {
		t.Fatal(err)
	}
	srv.Disable(arn, true)
	now = now.Add(30 * time.Second)
	if err := open(); err != nil {
		t.Fatalf("within the TTL the cached data key opens it: %v", err)
	}
	now = now.Add(31 * time.Second)
	if n := cache.Sweep(); n != 1 || cache.Len() != 0 {
		t.Fatalf("sweep dropped %d, %d left", n, cache.Len())
	}
	wantKind(t, open(), fail.KeyUnavailable, "cannot be used now")
}

// KMS retries wait as the broker's one backoff policy says (full jitter
// under 100 ms doubling) and each one is logged with its delay.
func TestRetriesAreLoggedWithTheirDelay(t *testing.T) {
	ctx := context.Background()
	srv, cfg := setup(t)
	var logs bytes.Buffer
	arn := srv.CreateKey("us-east-1")
	k, err := awskms.NewFromConfig(arn, cfg, awskms.LogRetries(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	e, err := envelope.Seal(ctx, []byte("v"), envelope.Binding{Name: "n"}, k)
	if err != nil {
		t.Fatal(err)
	}
	srv.Throttle(3)
	if _, err := e.Open(ctx, envelope.Expect{}, []envelope.KeyWrapper{k}); err != nil {
		t.Fatalf("three throttles should be retried away: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one warning per retried call (3), got:\n%s", logs.String())
	}
	re := regexp.MustCompile(`level=WARN msg="AWS KMS call failed; retrying" attempt=(\d) retry_in=([0-9.]+m?s|0s) .*ThrottlingException`)
	for i, l := range lines {
		m := re.FindStringSubmatch(l)
		if m == nil || m[1] != strconv.Itoa(i+1) {
			t.Fatalf("warning %d: %s", i+1, l)
		}
		d, _ := time.ParseDuration(m[2])
		if ceiling := (100 * time.Millisecond) << i; d > ceiling {
			t.Errorf("retry %d waited %v, over the full-jitter ceiling %v", i+1, d, ceiling)
		}
	}
	if strings.Contains(logs.String(), `"v"`) {
		t.Fatal("a value reached the log")
	}
}

// An endpoint override over plain HTTP is refused off loopback (data keys
// would cross in clear) and allowed on loopback (a local stand-in).
func TestPlainHTTPEndpointIsRefusedOffLoopback(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	const arn = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
	t.Setenv("AWS_ENDPOINT_URL_KMS", "http://kms.internal.example.com")
	_, err := awskms.New(context.Background(), arn)
	if err == nil || fail.KindOf(err) != fail.Usage || !strings.Contains(err.Error(), "plain HTTP") {
		t.Fatalf("a plain-http KMS endpoint: %v", err)
	}
	for _, ok := range []string{"http://127.0.0.1:4566", "https://kms.internal.example.com"} {
		t.Setenv("AWS_ENDPOINT_URL_KMS", ok)
		if _, err := awskms.New(context.Background(), arn); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}
