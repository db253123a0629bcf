//go:build !unix

package vaultcache

const nonBlocking = 0
