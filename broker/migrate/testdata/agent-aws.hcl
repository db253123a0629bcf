# A Vault Agent on EC2 or ECS: aws auto_auth of the IAM type with the
# server ID header, and static keys someone left in the config.
vault {
  address = "https://vault.example.com:8200"
}

auto_auth {
  method "aws" {
    mount_path = "auth/aws-prod"
    config = {
      type                     = "iam"
      role                     = "web"
      region                   = "eu-west-1"
      header_value             = "vault.example.com"
      access_key               = "AKIAEXAMPLEEXAMPLE01"
      secret_key               = "do-not-copy-this-secret-key"
      credential_poll_interval = 60
    }
  }
}

template {
  destination = "/etc/app/db.env"
  contents    = "DB_PASSWORD={{ with secret \"secret/data/db\" }}{{ .Data.data.password }}{{ end }}\n"
}
