package broker

import (
	"context"
	"fmt"

	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// This file is what a long-running user of brokers (the daemon, one broker
// per loaded config) needs beyond a single render: one name key and one
// Vault login across brokers, the data-key sweeper, re-reading one file.

// SetNameKey sets the key of the names computed Vault paths get
// (ShownRequest), so that they keep their names across brokers.
func (b *Broker) SetNameKey(k [32]byte) { b.nameKey = k }

// VaultKey names what a Vault login depends on: while it stays the same
// across a reload, the daemon keeps its client (and login). It includes
// whom the credential files name, so that credentials changed in place
// (another role_id in the same file) log in afresh at the reload.
func (b *Broker) VaultKey() string {
	c := b.cfg
	principal, err := b.vaultAuth().Principal()
	if err != nil {
		principal = "unreadable: " + err.Error()
	}
	if c.Vault == nil {
		return "(env)|" + principal
	}
	v := *c.Vault
	auth := config.Auth{}
	if v.Auth != nil {
		auth = *v.Auth
	}
	v.Auth = nil
	return fmt.Sprintf("%s|%+v|%+v|%s", c.Dir, v, auth, principal)
}

// UseVault makes b use c, a client someone else owns: Close leaves it open.
func (b *Broker) UseVault(c *vault.Client) { b.vault, b.sharedVault = c, true }

// LendVault hands b's own Vault client to the caller, who closes it from
// then on; nil when b has none of its own.
func (b *Broker) LendVault() *vault.Client {
	if b.vault == nil || b.sharedVault {
		return nil
	}
	b.sharedVault = true
	return b.vault
}

// Connected reports whether b has reached Vault (or was given a client).
func (b *Broker) Connected() bool { return b.vault != nil }

// RunSweeper zeroes expired data keys on a timer until ctx ends.
func (b *Broker) RunSweeper(ctx context.Context) { b.cache.RunSweeper(ctx) }

// ForgetFile drops the parsed secrets file at path, so that the next
// FetchLocal reads it again. Only one goroutine may call it and FetchLocal
// at a time.
func (b *Broker) ForgetFile(path string) { delete(b.files, path) }
