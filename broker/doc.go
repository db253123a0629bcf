// Package broker turns a loaded configuration into values: it fetches the
// declared secrets and the template calls from Vault and envelope files,
// renders every output once, and runs a command with secrets in its
// environment (exec); broker/daemon keeps the result fresh.
package broker
