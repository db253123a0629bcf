// Command zipdet writes a zip archive whose bytes depend only on the files
// given and one time (the release's commit time), so two builds of one
// commit give the same archive: scripts/release.sh uses it for Windows.
//
//	go run ./scripts/zipdet OUT.zip 2026-01-02T03:04:05Z DIR NAME...
package main

import (
	"archive/zip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "zipdet:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 4 {
		return fmt.Errorf("usage: zipdet OUT.zip TIME DIR NAME")
	}
	when, err := time.Parse(time.RFC3339, args[1])
	if err != nil {
		return fmt.Errorf("time %q: %w", args[1], err)
	}
	out, err := os.Create(args[0])
	if err != nil {
		return err
	}
	zw := zip.NewWriter(out)
	for _, name := range args[3:] {
		if err := add(zw, filepath.Join(args[2], name), name, when.UTC()); err != nil {
			out.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func add(zw *zip.Writer, path, name string, when time.Time) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := &zip.FileHeader{Name: filepath.ToSlash(name), Method: zip.Deflate, Modified: when}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, f)
	return err
}
