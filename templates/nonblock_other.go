//go:build !unix

package templates

const nonBlocking = 0
