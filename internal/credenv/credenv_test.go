package credenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// notCredentials are the SDKs' variables reviewed as plain settings: they
// choose regions, endpoints, retries and TLS trust, and grant nothing.
var notCredentials = map[string]bool{
	"AWS_ACCOUNT_ID": true, "AWS_ACCOUNT_ID_ENDPOINT_MODE": true, "AWS_AUTH_SCHEME_PREFERENCE": true, "AWS_CA_BUNDLE": true,
	"AWS_DEFAULTS_MODE": true, "AWS_DEFAULT_REGION": true, "AWS_REGION": true, "AWS_DISABLE_CLOCK_SKEW_CORRECTION": true,
	"AWS_DISABLE_REQUEST_COMPRESSION": true, "AWS_EC2_METADATA_DISABLED": true, "AWS_EC2_METADATA_SERVICE_ENDPOINT": true,
	"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": true, "AWS_EC2_METADATA_V1_DISABLED": true, "AWS_ENABLE_ENDPOINT_DISCOVERY": true,
	"AWS_ENDPOINT_URL": true, "AWS_EXECUTION_ENV": true, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": true, "AWS_MAX_ATTEMPTS": true,
	"AWS_REQUEST_CHECKSUM_CALCULATION": true, "AWS_REQUEST_MIN_COMPRESSION_SIZE_BYTES": true, "AWS_RESPONSE_CHECKSUM_VALIDATION": true,
	"AWS_RESTRICT_FILE_PERMISSIONS": true, "AWS_RETRY_MODE": true, "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH": true,
	"AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS": true, "AWS_S3_USE_ARN_REGION": true, "AWS_SDK_UA_APP_ID": true,
	"AWS_USE_DUALSTACK_ENDPOINT": true, "AWS_USE_FIPS_ENDPOINT": true,
	"VAULT_ADDR": true, "VAULT_AGENT_ADDR": true, "VAULT_CACERT": true, "VAULT_CACERT_BYTES": true, "VAULT_CAPATH": true,
	"VAULT_CLIENT_TIMEOUT": true, "VAULT_SRV_LOOKUP": true, "VAULT_SKIP_VERIFY": true, "VAULT_NAMESPACE": true,
	"VAULT_TLS_SERVER_NAME": true, "VAULT_WRAP_TTL": true, "VAULT_MAX_RETRIES": true, "VAULT_RATE_LIMIT": true,
	"VAULT_HTTP_PROXY": true, "VAULT_PROXY_ADDR": true, "VAULT_DISABLE_REDIRECTS": true,
	"VAULT_ALLOW_PENDING_REMOVAL_DUPLICATE_HCL_ATTRIBUTES": true, "VAULT_PLUGIN_AUTOMTLS_ENABLED": true, "VAULT_PLUGIN_METADATA_MODE": true,
}

// sdkVars reads the quoted PREFIX* names in the Go sources of a module
// package this build uses.
func sdkVars(t *testing.T, pkg, prefix string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	dir := strings.TrimSpace(string(out))
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	re := regexp.MustCompile(`"(` + prefix + `[A-Z0-9_]+)"`)
	seen := map[string]bool{}
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				names = append(names, m[1])
			}
		}
	}
	if len(names) < 5 {
		t.Fatalf("found only %v in %s: the SDK's layout changed; update this test", names, dir)
	}
	return names
}

func TestEverySDKVariableIsReviewed(t *testing.T) {
	for _, src := range []struct{ pkg, prefix string }{
		{"github.com/aws/aws-sdk-go-v2/config", "AWS_"},
		{"github.com/hashicorp/vault/api", "VAULT_"},
	} {
		for _, name := range sdkVars(t, src.pkg, src.prefix) {
			if !IsCredential(name) && !notCredentials[name] {
				t.Errorf("%s reads %s: decide whether it carries credentials (credentialVars) or is a plain setting (notCredentials)", src.pkg, name)
			}
			if IsCredential(name) && notCredentials[name] {
				t.Errorf("%s is listed both as a credential and as a plain setting", name)
			}
		}
	}
	for _, must := range []string{"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "VAULT_TOKEN", "SECRETS_BROKER_LOCAL_KEY", "SECRETS_BROKER_KEYS"} {
		if !IsCredential(must) {
			t.Errorf("%s is not treated as a credential", must)
		}
	}
}

func TestStrip(t *testing.T) {
	got := Strip([]string{"PATH=/bin", "AWS_ROLE_ARN=x", "VAULT_TOKEN=hvs.x", "SECRETS_BROKER_KEYS=local", "AWS_REGION=eu-west-1"})
	if strings.Join(got, " ") != "PATH=/bin AWS_REGION=eu-west-1" {
		t.Fatalf("Strip = %v", got)
	}
}
