# consul-template in the shape of its documentation's example config:
# Consul and Vault, wait, exec with env rules, and templates with commands.
consul {
  address = "127.0.0.1:8500"
}

log_level     = "warn"
pid_file      = "/var/run/consul-template.pid"
kill_signal   = "SIGINT"
reload_signal = "SIGHUP"
max_stale     = "10m"

vault {
  address                = "https://vault.service.consul:8200"
  namespace              = "ops"
  vault_agent_token_file = "/run/vault/token"
  renew_token            = true
  default_lease_duration = "5m"
  lease_renewal_threshold = 0.9
  ssl {
    enabled     = true
    verify      = false
    cert        = "/etc/vault/client.crt"
    key         = "/etc/vault/client.key"
    ca_cert     = "/etc/vault/ca.crt"
    server_name = "vault.service.consul"
  }
  retry {
    attempts = 12
  }
}

wait {
  min = "5s"
  max = "30s"
}

exec {
  command       = "/usr/bin/app -config /etc/app/config.json"
  splay         = "5s"
  kill_signal   = "SIGTERM"
  kill_timeout  = "15s"
  reload_signal = "SIGHUP"
  env {
    pristine  = false
    custom    = ["PATH=/usr/bin"]
    allowlist = ["PATH", "HOME", "APP_*"]
    denylist  = ["VAULT_*"]
  }
}

template {
  source          = "/etc/ct/config.json.ctmpl"
  destination     = "/etc/app/config.json"
  perms           = "0600"
  command         = "/usr/bin/app-reload"
  command_timeout = "60s"
  create_dest_dirs = true
  wait {
    min = "2s"
  }
}

template {
  source      = "/etc/ct/nginx.conf.ctmpl"
  destination = "/etc/nginx/conf.d/app.conf"
  user        = "nginx"
  group       = "nginx"
  command     = "nginx -s reload"
  error_on_missing_key = false
}
