package main

import (
	"context"
	"os"
	"runtime/pprof"

	"github.com/secrets-broker/secrets-broker/cmd/internal/cli"
)

func main() {
	f, _ := os.Create(os.Getenv("PROF"))
	pprof.StartCPUProfile(f)
	code := cli.Main(context.Background(), cli.Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	pprof.StopCPUProfile()
	os.Exit(code)
}
