# Vault Agent as a process supervisor: AppRole with a wrapped secret_id,
# env_template for the child's environment and an exec block.
vault {
  address = "http://127.0.0.1:8200"
}

auto_auth {
  method {
    type = "approle"
    config = {
      role_id_file_path                   = "/etc/vault/role-id"
      secret_id_file_path                 = "/etc/vault/secret-id"
      remove_secret_id_file_after_reading = false
      secret_id_response_wrapping_path    = "auth/approle/role/app/secret-id"
    }
  }
}

env_template "DB_PASSWORD" {
  contents             = "{{ with secret \"secret/data/app\" }}{{ .Data.data.password }}{{ end }}"
  error_on_missing_key = true
}

env_template "API_KEY" {
  contents = "{{ with secret \"kv1/api\" }}{{ .Data.key }}{{ end }}"
}

env_template "GREETING" {
  contents = "{{ with secret \"secret/data/app\" }}hello {{ .Data.data.user }}{{ end }}"
}

exec {
  command                   = ["/usr/local/bin/app", "--port", "8080"]
  restart_on_secret_changes = "always"
  restart_stop_signal       = "SIGINT"
}
