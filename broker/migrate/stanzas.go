package migrate

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/secrets-broker/secrets-broker/internal/loopback"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
	"github.com/secrets-broker/secrets-broker/templates"
)

func (c *converter) vault(bs []map[string]any) {
	for _, b := range bs {
		v := section(c.root, "vault")
		for _, k := range sortedKeys(b) {
			val := b[k]
			switch k {
			case "address", "namespace", "ca_cert", "ca_path", "client_cert", "client_key", "tls_server_name":
				set(v, k, scalar(str(val)), "")
				if k == "address" && plainHTTPOffLoopback(str(val)) {
					c.note("vault.address %s is plain http: the broker refuses it off loopback (its token would cross the network in clear); use https://, or add vault.insecure_http: true where the network is protected otherwise", str(val))
				}
			case "ssl": // consul-template
				for _, s := range blocks(val) {
					for _, sk := range sortedKeys(s) {
						switch sk {
						case "ca_cert", "ca_path":
							set(v, sk, scalar(str(s[sk])), "")
						case "cert":
							set(v, "client_cert", scalar(str(s[sk])), "")
						case "key":
							set(v, "client_key", scalar(str(s[sk])), "")
						case "server_name":
							set(v, "tls_server_name", scalar(str(s[sk])), "")
						case "verify":
							if b, _ := s[sk].(bool); !b {
								c.note("vault.ssl.verify = false: TLS is always verified; give the CA with vault.ca_cert")
							}
						case "enabled":
						default:
							c.note("vault.ssl.%s: no equivalent", sk)
						}
					}
				}
			case "tls_skip_verify":
				if b, _ := val.(bool); b {
					c.note("vault.tls_skip_verify = true: TLS is always verified; give the CA with vault.ca_cert")
				}
			case "retry":
				c.note("vault.retry: one retry policy (exponential backoff, full jitter) bounded by --timeout at start")
			case "token":
				c.note("vault.token: a token in a config file is not read; use VAULT_TOKEN or vault.auth.token_file")
			case "vault_agent_token_file":
				a := section(v, "auth")
				set(a, "method", scalar("token"), "")
				set(a, "token_file", scalar(str(val)), "re-read at every login")
			case "renew_token":
				c.note("vault.renew_token: the broker always renews its own token and logs in again when it cannot")
			case "unwrap_token":
				c.note("vault.unwrap_token: a wrapped token is not unwrapped; AppRole's wrapped secret_id is (secret_id_response_wrapped)")
			case "default_lease_duration":
				c.note("vault.default_lease_duration: secrets without a lease are read again every refresh.static_interval")
			case "lease_renewal_threshold":
				r := section(c.root, "refresh")
				set(r, "certificate_renewal", scalar(fmt.Sprint(val)), "leases renew at a random point in 1/3-5/6 of the time left")
			default:
				c.note("vault.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) autoAuth(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			switch k {
			case "method":
				c.methods(b[k])
			case "sink":
				c.note("auto_auth.sink: NOT TRANSLATED: the broker keeps its Vault token in memory (and, with cache:, sealed on disk) and never writes it where an app can read it, so an app that reads the agent's token file loses its Vault token: render what it reads from Vault as an output instead, or give it a login of its own")
			default:
				c.note("auto_auth.%s: no equivalent", k)
			}
		}
	}
}

// methods reads method "TYPE" { ... } or method { type = "TYPE" ... }.
func (c *converter) methods(v any) {
	var ms []map[string]any
	var types []string
	for _, b := range blocks(v) {
		if t, ok := b["type"]; ok {
			ms, types = append(ms, b), append(types, str(t))
			continue
		}
		for _, t := range sortedKeys(b) {
			for _, inner := range blocks(b[t]) {
				ms, types = append(ms, inner), append(types, t)
			}
		}
	}
	for i, m := range ms {
		if i > 0 {
			c.note("auto_auth.method %q: only one auth method is used; the first (%s) was kept", types[i], types[0])
			continue
		}
		a := section(section(c.root, "vault"), "auth")
		cfg := map[string]any{}
		for _, b := range blocks(m["config"]) {
			for k, v := range b {
				cfg[k] = v
			}
		}
		if ns := str(m["namespace"]); ns != "" {
			c.note("auto_auth.method.namespace: log in within vault.namespace")
		}
		used := map[string]bool{}
		take := func(from, to string, comment string) {
			if v, ok := cfg[from]; ok {
				used[from] = true
				set(a, to, scalar(str(v)), comment)
			}
		}
		switch types[i] {
		case "kubernetes":
			set(a, "method", scalar("kubernetes"), "")
			take("role", "role", "")
			take("token_path", "service_account_token_file", "")
		case "approle":
			set(a, "method", scalar("approle"), "")
			take("role_id_file_path", "role_id_file", "")
			take("secret_id_file_path", "secret_id_file", "")
			take("remove_secret_id_file_after_reading", "remove_secret_id_file_after_reading", "")
			if _, ok := cfg["secret_id_response_wrapping_path"]; ok {
				used["secret_id_response_wrapping_path"] = true
				set(a, "secret_id_response_wrapped", scalar("true"), "the wrapping path is not checked")
			}
		case "jwt":
			set(a, "method", scalar("jwt"), "")
			take("role", "role", "")
			take("path", "jwt_file", "re-read at every login")
			used["remove_jwt_after_reading"] = true
		case "token_file":
			set(a, "method", scalar("token"), "")
			take("token_file_path", "token_file", "re-read at every login")
		case "cert":
			set(a, "method", scalar("cert"), "")
			take("name", "name", "")
			take("client_cert", "client_cert", "re-read when it changes")
			take("client_key", "client_key", "")
			if v, ok := cfg["ca_cert"]; ok {
				used["ca_cert"] = true
				if vs := section(c.root, "vault"); !has(vs, "ca_cert") {
					set(vs, "ca_cert", scalar(str(v)), "")
				} else {
					c.note("auto_auth.method \"cert\" config.ca_cert: vault.ca_cert is used for Vault's certificate")
				}
			}
			used["reload"] = true // the broker always reads a changed certificate again
		case "aws":
			if t := str(cfg["type"]); t != "" && t != "iam" {
				c.note("auto_auth.method \"aws\": type %q is not supported, only iam is: bind the instance's IAM role in Vault (auth_type=iam) and log in with it", t)
			}
			used["type"] = true
			set(a, "method", scalar("aws"), "")
			set(a, "type", scalar("iam"), "")
			take("role", "role", "")
			take("region", "region", "")
			take("header_value", "header_value", "")
			for _, k := range []string{"access_key", "secret_key", "session_token"} {
				if _, ok := cfg[k]; ok {
					used[k] = true
					c.note("auto_auth.method \"aws\" config.%s: not carried over: the broker takes AWS credentials from the standard chain only (an IAM role, AWS_* variables, a shared credentials file), never from its config", k)
				}
			}
			if _, ok := cfg["credential_poll_interval"]; ok {
				used["credential_poll_interval"] = true
				c.note("auto_auth.method \"aws\" config.credential_poll_interval: not needed: the credentials are read at each login")
			}
		default:
			// Nothing is emitted for it: an auth section without a method
			// would not log in the way the agent did (validate refuses one).
			unset(section(c.root, "vault"), "auth")
			c.note("auto_auth.method %q: NOT TRANSLATED: not supported (token, approle, kubernetes, jwt, cert and aws are); add a vault.auth section with one of those before using this config", types[i])
			continue
		}
		if mp := str(m["mount_path"]); mp != "" {
			set(a, "mount", scalar(strings.TrimPrefix(mp, "auth/")), "")
		}
		for _, k := range sortedKeys(cfg) {
			if !used[k] {
				c.note("auto_auth.method %q config.%s: no equivalent", types[i], k)
			}
		}
		if a.Content[0].Value != "method" { // method first
			for j := 0; j+1 < len(a.Content); j += 2 {
				if a.Content[j].Value == "method" {
					k, v := a.Content[j], a.Content[j+1]
					a.Content = append(a.Content[:j], a.Content[j+2:]...)
					a.Content = append([]*yaml.Node{k, v}, a.Content...)
					break
				}
			}
		}
	}
}

func (c *converter) templates(bs []map[string]any) {
	var dests []string
	for _, b := range bs {
		if d := str(b["destination"]); d != "" {
			dests = append(dests, d)
		}
	}
	// Destinations that share no directory below / (/etc/nginx/certs and
	// /var/run/app) each get their directory as their own root: no output
	// is written beneath output_root: /.
	root := commonDir(dests)
	ownRoots := root == string(filepath.Separator)
	if len(dests) > 0 && !ownRoots {
		set(c.root, "output_root", scalar(root), "")
	}
	if ownRoots {
		c.note("templates: the destinations share no directory, so each output has its own root (its destination's directory) instead of output_root: /")
	}
	outs := &yaml.Node{Kind: yaml.SequenceNode}
	for i, b := range bs {
		o := mapping()
		where := fmt.Sprintf("template %d", i+1)
		dest := str(b["destination"])
		if dest == "" {
			c.note("%s: no destination; it is left out", where)
			continue
		}
		where = fmt.Sprintf("template %q", dest)
		rel := dest
		if ownRoots {
			set(o, "root", scalar(filepath.Dir(dest)), "")
			rel = filepath.Base(dest)
		} else if root != "" {
			if r, err := filepath.Rel(root, dest); err == nil {
				rel = r
			}
		}
		set(o, "path", scalar(rel), "")
		c.checkTemplate(where, b)
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "destination":
			case "source":
				set(o, "template", scalar(str(v)), "")
			case "contents":
				set(o, "template_text", literal(str(v)), "")
			case "perms":
				set(o, "mode", scalar(fmt.Sprintf("%04s", strings.TrimPrefix(permsText(v), "0o"))), "")
			case "user", "group":
				set(o, k, scalar(str(v)), "")
			case "command":
				set(section(o, "notify"), "command", command(v), commandComment(v))
			case "command_timeout":
				set(section(o, "notify"), "timeout", scalar(str(v)), "")
			case "error_on_missing_key":
				if b, _ := v.(bool); !b {
					set(o, "error_on_missing_key", scalar("false"), "a missing key renders empty, as in consul-template")
				}
			case "left_delimiter", "right_delimiter":
				set(o, k, scalar(str(v)), "")
			case "backup":
				c.note("%s backup: not needed: writes are atomic and a failed one leaves the old file", where)
			case "wait":
				c.templateWait(where, o, v)
			case "create_dest_dirs":
				if b, _ := v.(bool); !b {
					c.note("%s create_dest_dirs = false: missing directories beneath output_root are always created", where)
				}
			case "exec":
				c.note("%s exec: use notify.command (argv, no shell) or the top-level exec block", where)
			default:
				c.note("%s %s: no equivalent", where, k)
			}
		}
		if !has(o, "template") && !has(o, "template_text") {
			c.note("%s: no source or contents; it is left out", where)
			continue
		}
		outs.Content = append(outs.Content, o)
	}
	if len(outs.Content) > 0 {
		set(c.root, "outputs", outs, "")
	}
}

// permsText is perms as octal text. An unquoted perms = 0600 reaches us as
// the integer 384 (HCL reads a leading 0 as octal), and consul-template and
// Vault Agent take that integer as the file mode: write it in octal.
func permsText(v any) string {
	switch x := v.(type) {
	case int:
		return strconv.FormatInt(int64(x), 8)
	case int64:
		return strconv.FormatInt(x, 8)
	}
	return str(v)
}

func (c *converter) templateConfig(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "static_secret_render_interval":
				set(section(c.root, "refresh"), "static_interval", scalar(str(v)), "")
			case "exit_on_retry_failure":
				c.note("template_config.exit_on_retry_failure: run --once exits non-zero naming each failed output; the daemon keeps the last good values and reports them on /readyz")
			case "lease_renewal_threshold":
				set(section(c.root, "refresh"), "certificate_renewal", scalar(fmt.Sprint(v)), "leases renew at a random point in 1/3-5/6 of the time left")
			case "max_connections_per_host":
				c.note("template_config.max_connections_per_host: at most 16 Vault requests are in flight")
			default:
				c.note("template_config.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) wait(where string, v any) {
	c.waitInto(where, func() *yaml.Node { return section(section(c.root, "refresh"), "wait") }, v)
}

// templateWait is a template's own wait: the output's wait.
func (c *converter) templateWait(where string, o *yaml.Node, v any) {
	c.waitInto(where+" wait", func() *yaml.Node { return section(o, "wait") }, v)
	c.note("%s wait: the output's own wait, which adds to refresh.wait (consul-template's replaces the global one): drop refresh.wait if it was meant only for the other templates", where)
}

// waitInto writes a wait block ({min, max}) or consul-template's
// "MIN:MAX" / "MIN" string form into the section at.
func (c *converter) waitInto(where string, at func() *yaml.Node, v any) {
	if s, ok := v.(string); ok {
		lo, hi, _ := strings.Cut(s, ":")
		w := at()
		set(w, "min", scalar(strings.TrimSpace(lo)), "")
		if hi != "" {
			set(w, "max", scalar(strings.TrimSpace(hi)), "")
		}
		return
	}
	for _, b := range blocks(v) {
		w := at()
		for _, k := range []string{"min", "max"} {
			if v, ok := b[k]; ok {
				set(w, k, scalar(str(v)), "")
			}
		}
		for _, k := range sortedKeys(b) {
			switch k {
			case "min", "max":
			case "enabled":
				c.note("%s.enabled: no equivalent (remove the wait to turn it off)", where)
			default:
				c.note("%s.%s: no equivalent", where, k)
			}
		}
	}
}

// simpleSecret matches an env_template that prints one secret field.
var simpleSecret = regexp.MustCompile(`^\s*\{\{-?\s*with secret "([^"]+)"\s*-?\}\}\s*\{\{-?\s*\.Data\.(data\.)?([A-Za-z0-9_]+)\s*-?\}\}\s*\{\{-?\s*end\s*-?\}\}\s*$`)

func (c *converter) envTemplates(v any) {
	for _, b := range blocks(v) {
		for _, name := range sortedKeys(b) {
			for _, t := range blocks(b[name]) {
				contents := str(t["contents"])
				m := simpleSecret.FindStringSubmatch(contents)
				if m == nil {
					c.note("env_template %q: not one secret field ({{ with secret \"PATH\" }}{{ .Data.data.FIELD }}{{ end }}); declare it as a secret by hand or render it to a file", name)
					continue
				}
				if c.secrets == nil {
					c.secrets = mapping()
				}
				set(c.secrets, name, scalar("vault:"+m[1]+"#"+m[3]), "")
				if c.env == nil {
					c.env = mapping()
					set(section(c.root, "exec"), "env", c.env, "")
				}
				set(c.env, name, scalar(name), "")
				for _, k := range sortedKeys(t) {
					if k != "contents" && k != "error_on_missing_key" {
						c.note("env_template %q %s: no equivalent", name, k)
					}
				}
			}
		}
	}
}

func (c *converter) exec(bs []map[string]any) {
	for _, b := range bs {
		e := section(c.root, "exec")
		for _, k := range sortedKeys(b) {
			v := b[k]
			switch k {
			case "command":
				set(e, "command", command(v), commandComment(v))
			case "restart_on_secret_changes":
				set(e, k, scalar(str(v)), "")
			case "restart_stop_signal", "kill_signal":
				set(e, "kill_signal", scalar(strings.TrimPrefix(str(v), "SIG")), "")
			case "reload_signal":
				set(e, "reload_signal", scalar(strings.TrimPrefix(str(v), "SIG")), "")
			case "kill_timeout", "splay":
				set(e, k, scalar(str(v)), "")
			case "enabled":
			case "env":
				for _, env := range blocks(v) {
					for _, ek := range sortedKeys(env) {
						switch ek {
						case "pristine":
							set(e, "pristine", scalar(fmt.Sprint(env[ek])), "")
						case "allowlist", "whitelist":
							set(e, "env_allow", list(env[ek]), "")
						case "denylist", "blacklist":
							set(e, "env_deny", list(env[ek]), "")
						case "custom":
							c.note("exec.env.custom: set the variables in the broker's own environment (they pass through) or as secrets")
						default:
							c.note("exec.env.%s: no equivalent", ek)
						}
					}
				}
			default:
				c.note("exec.%s: no equivalent", k)
			}
		}
	}
}

func (c *converter) cache(bs []map[string]any) {
	for _, b := range bs {
		for _, k := range sortedKeys(b) {
			switch k {
			case "persist":
				for _, p := range blocks(b[k]) {
					dir := str(p["path"])
					for _, t := range sortedKeys(p) { // persist "kubernetes" { path = ... }
						for _, inner := range blocks(p[t]) {
							if d := str(inner["path"]); d != "" {
								dir = d
							}
						}
					}
					if dir != "" {
						cc := section(c.root, "cache")
						set(cc, "path", scalar(dir), "")
						set(cc, "key", scalar("local"), "seals the entries: local (a key file made with keygen) or awskms:ARN")
					}
				}
			case "use_auto_auth_token":
			default:
				c.note("cache.%s: the broker is not a caching proxy; cache: keeps its own leases across restarts", k)
			}
		}
	}
}

// plainHTTPOffLoopback says whether addr is an http:// URL whose host is
// not loopback.
func plainHTTPOffLoopback(addr string) bool {
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "http" {
		return false
	}
	return !loopback.Host(u.Hostname())
}

// checkTemplate parses a template (inline, or its source file when this
// machine can read it) as the broker will, and notes what it refuses, such
// as a Consul function, with its line: found now rather than at the first
// render.
func (c *converter) checkTemplate(where string, b map[string]any) {
	text, name := str(b["contents"]), "contents of "+where
	if src := str(b["source"]); src != "" {
		data, err := readlimit.File(src, templates.MaxTemplateLen, "template "+src)
		if err != nil {
			c.note("%s: the template %s was not checked here (%v); run secrets-broker validate where it is", where, src, err)
			return
		}
		text, name = string(data), src
	}
	_, err := templates.Parse(name, text, templates.Options{LeftDelim: str(b["left_delimiter"]), RightDelim: str(b["right_delimiter"])})
	if err != nil {
		c.note("%s: %v", where, err)
	}
}
