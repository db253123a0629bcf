package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// SecretRefHelp documents the one form of a secret reference, used in config
// files and --secret NAME=REF flags alike.
const SecretRefHelp = `A secret reference is one of:
  vault:PATH[?PARAM=VALUE&...][#FIELD]  a Vault path; #FIELD picks one field, without it
                                        the whole response data as JSON. KV v2 paths include
                                        /data/; ?version=N pins a KV v2 version; other
                                        parameters make it a write (pki/issue/web?common_name=x)
  envelope:FILE#ENTRY                   one entry of a secrets file (secrets-broker encrypt --file)
  envelope:FILE[?name=NAME]             a file holding one envelope (sbe1:...), which must be
                                        sealed for NAME (default: the declared secret's name)
  file:PATH                             a plain file (for example a mounted Kubernetes secret)
  token:NAME[#FIELD]                    an access token of the tokens: entry NAME; #FIELD is
                                        access_token (default), token_type, expiry or scope
Examples: vault:secret/data/app#password  vault:database/creds/app
          envelope:secrets.enc.yaml#db_password  file:/run/secrets/token`

// SecretRef says where one secret comes from.
type SecretRef struct {
	Scheme string // "vault", "envelope", "file" or "token"
	Vault  vault.Ref
	Path   string // envelope or plain file
	Entry  string // secrets-file entry; empty for a single-envelope file
	// Name pins the name a single envelope must be sealed for (?name=);
	// empty means the declared secret's name.
	Name string
	// Token names a tokens: entry; TokenField what of it (TokenFields).
	Token, TokenField string
	text              string
}

// String is the reference as written.
func (r SecretRef) String() string { return r.text }

// ParseSecretRef reads a reference; a malformed one is an error that shows
// the expected form.
func ParseSecretRef(s string) (SecretRef, error) {
	bad := func(why string) (SecretRef, error) {
		return SecretRef{}, fail.Mark(fail.Usage, fmt.Errorf("secret reference %q %s.\n%s", s, why, SecretRefHelp))
	}
	scheme, rest, ok := strings.Cut(s, ":")
	if !ok || rest == "" {
		return bad("has no scheme (vault:, envelope:, file: or token:)")
	}
	r := SecretRef{Scheme: scheme, text: s}
	switch scheme {
	case "vault":
		vr, err := vault.ParseRef(rest)
		if err != nil {
			return bad("is not a valid Vault reference")
		}
		r.Vault = vr
	case "envelope":
		path, entry, _ := strings.Cut(rest, "#")
		if strings.Contains(s, "#") && entry == "" {
			return bad("has an empty #ENTRY")
		}
		path, query, hasQuery := strings.Cut(path, "?")
		if path == "" {
			return bad("has no file")
		}
		if hasQuery {
			name, ok := strings.CutPrefix(query, "name=")
			if !ok || name == "" || strings.ContainsAny(name, "&=") {
				return bad("has a query other than ?name=NAME")
			}
			if entry != "" {
				return bad("pins ?name= on a secrets-file entry, whose name is the #ENTRY")
			}
			if err := (envelope.Binding{Name: name}).Validate(); err != nil {
				return bad("pins an invalid name (" + err.Error() + ")")
			}
			r.Name = name
		}
		r.Path, r.Entry = path, entry
	case "file":
		if strings.Contains(rest, "#") {
			return bad("has a #; file: references take no field")
		}
		r.Path = rest
	case "token":
		name, field, hasField := strings.Cut(rest, "#")
		if name == "" || validSecretName(name) != nil {
			return bad("does not name a tokens: entry")
		}
		if !hasField {
			field = TokenFields[0]
		}
		if !slices.Contains(TokenFields, field) {
			return bad("picks #" + field + "; a token has #" + strings.Join(TokenFields, ", #"))
		}
		r.Token, r.TokenField = name, field
	default:
		return bad("has an unknown scheme " + scheme)
	}
	return r, nil
}
