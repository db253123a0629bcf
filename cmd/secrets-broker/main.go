// Command secrets-broker fetches, seals, renders and refreshes secrets.
// See README.md and docs/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
	"github.com/secrets-broker/secrets-broker/internal/nodump"

	// Mozilla's roots, compiled in, used only where the system has none
	// (the FROM scratch image): the image carries no CA bundle of the
	// machine that built it. A bundle mounted at /etc/ssl/certs, or
	// SSL_CERT_FILE, replaces them; the version is in every SBOM.
	_ "golang.org/x/crypto/x509roots/fallback"
)

// version, commit and date are set at link time by scripts/ldflags.sh
// (-X main.version=v1.2.3 -X main.commit=... -X main.date=...), the one
// place every build (Makefile, Dockerfile, release) takes them from.
var version, commit, date = "", "", ""

func main() {
	// First, before any secret is read: a child of the same uid must not
	// read the broker's environment or memory through /proc.
	if err := nodump.Apply(); err != nil {
		fmt.Fprintf(os.Stderr, "secrets-broker: %v\n", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, cli.Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Version: version, Commit: commit, Date: date})
	stop()
	os.Exit(code)
}
