# A Vault Agent on a host whose PKI agent keeps a client certificate in
# /etc/pki: cert auto_auth, as in Vault's documentation.
vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "cert" {
    config = {
      name        = "web"
      ca_cert     = "/etc/pki/vault-ca.pem"
      client_cert = "/etc/pki/web.crt"
      client_key  = "/etc/pki/web.key"
      reload      = true
    }
  }
}

template {
  destination = "/etc/app/db.env"
  contents    = "DB_PASSWORD={{ with secret \"secret/data/db\" }}{{ .Data.data.password }}{{ end }}\n"
}
