// Package credenv owns the list of environment variables that carry the
// broker's own credentials: the AWS SDK's credential chain, the Vault
// client's credentials and secrets-broker's own key settings. None of them
// reaches a child process, a notify command or a template unless the user
// passes them on explicitly.
//
// The list is derived from the SDKs' own sources: a test reads every AWS_*
// variable that aws-sdk-go-v2/config reads and every VAULT_* variable that
// hashicorp/vault/api declares, and fails when one is in neither
// credentialVars nor the reviewed list of plain settings, so an SDK upgrade
// that adds a credential variable cannot slip through.
package credenv

import "strings"

// credentialVars are the variables a child never inherits by default.
var credentialVars = []string{
	// AWS static credentials.
	"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
	// AWS container (ECS/EKS Pod Identity) credentials endpoint and its token.
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
	// AWS web identity (IRSA) and assumed roles.
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	// AWS profiles and the files that hold credentials, credential_process,
	// SSO and login caches.
	"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_LOGIN_CACHE_DIRECTORY",
	// Vault: the token, the TLS client identity, MFA and headers (which can
	// carry an Authorization header).
	"VAULT_TOKEN", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_MFA", "VAULT_HEADERS",
	// Vault plugins: the response-wrapped token a plugin unwraps.
	"VAULT_UNWRAP_TOKEN",
}

// brokerPrefix covers secrets-broker's own settings (SECRETS_BROKER_KEYS,
// SECRETS_BROKER_LOCAL_KEY, SECRETS_BROKER_CONFIG, ...).
const brokerPrefix = "SECRETS_BROKER_"

// IsCredential reports whether the variable name carries the broker's
// credentials or key settings.
func IsCredential(name string) bool {
	if strings.HasPrefix(name, brokerPrefix) {
		return true
	}
	for _, v := range credentialVars {
		if v == name {
			return true
		}
	}
	return false
}

// Strip returns env (NAME=VALUE entries) without the credential variables.
func Strip(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if name, _, _ := strings.Cut(kv, "="); !IsCredential(name) {
			out = append(out, kv)
		}
	}
	return out
}
