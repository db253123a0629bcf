# A Vault Agent sidecar in Kubernetes, in the shape of Vault's documentation
# examples: kubernetes auto_auth with a file sink, a persistent cache,
# template_config, and three templates (a file source, inline contents with
# a reload command, and a certificate pair).
pid_file        = "/tmp/vault-agent.pid"
exit_after_auth = false

vault {
  address         = "https://vault.example.com:8200"
  ca_cert         = "/vault/tls/ca.crt"
  tls_server_name = "vault.example.com"
  namespace       = "team-a"
  retry {
    num_retries = 5
  }
}

auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role       = "web"
      token_path = "/var/run/secrets/tokens/vault"
    }
  }
  method "aws" {
    config = {
      type = "iam"
      role = "app"
    }
  }
  sink "file" {
    config = {
      path = "/home/vault/.vault-token"
    }
  }
}

cache {
  use_auto_auth_token = true
  persist "kubernetes" {
    path = "/vault/agent-cache"
  }
}

listener "tcp" {
  address     = "127.0.0.1:8100"
  tls_disable = true
}

template_config {
  static_secret_render_interval = "10m"
  exit_on_retry_failure         = true
  lease_renewal_threshold       = 0.75
}

template {
  source      = "/vault/templates/app.conf.tmpl"
  destination = "/etc/app/app.conf"
  perms       = "0640"
  error_on_missing_key = true
}

template {
  contents    = <<EOT
{{ with secret "database/creds/app" }}DB_USER={{ .Data.username }}
DB_PASS={{ .Data.password }}{{ end }}
EOT
  destination = "/etc/app/db.env"
  command     = "pkill -HUP app"
  left_delimiter  = "[["
  right_delimiter = "]]"
}

template {
  contents    = "{{ with secret \"pki/issue/web\" \"common_name=web.example.com\" }}{{ .Data.certificate }}{{ end }}"
  destination = "/etc/app/tls/tls.crt"
  backup      = true
  command     = "systemctl reload nginx || true"
}
