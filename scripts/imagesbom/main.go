// Command imagesbom writes the CycloneDX SBOM of one release image from the
// SBOM of the binary it holds (cyclonedx-gomod's, every linked module) and
// the files scripts/release.sh puts beside it: the image becomes the
// described component, the binary and the CA bundle its parts, each with
// its SHA-256, and the CA bundle names the distribution package it came
// from. Nothing else is in the image (scripts/release.Dockerfile is FROM
// scratch), so nothing else is listed.
//
//	go run ./scripts/imagesbom OUT BINARY.sbom.cdx.json IMAGE VERSION ROOTFS PACKAGE-PURL
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagesbom:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 6 {
		return fmt.Errorf("usage: imagesbom OUT BINARY.sbom.cdx.json IMAGE VERSION ROOTFS PACKAGE-PURL")
	}
	out, binSBOM, image, version, rootfs, caPurl := args[0], args[1], args[2], args[3], args[4], args[5]
	data, err := os.ReadFile(binSBOM)
	if err != nil {
		return err
	}
	var bom map[string]any
	if err := json.Unmarshal(data, &bom); err != nil {
		return fmt.Errorf("%s is not JSON: %w", binSBOM, err)
	}
	meta, _ := bom["metadata"].(map[string]any)
	binary, _ := meta["component"].(map[string]any)
	components, _ := bom["components"].([]any)
	deps, _ := bom["dependencies"].([]any)
	if binary == nil || binary["bom-ref"] == nil {
		return fmt.Errorf("%s describes no component; give the binary's SBOM from cyclonedx-gomod bin", binSBOM)
	}
	binHash, err := sha256File(filepath.Join(rootfs, "secrets-broker"))
	if err != nil {
		return err
	}
	caHash, err := sha256File(filepath.Join(rootfs, "etc/ssl/certs/ca-certificates.crt"))
	if err != nil {
		return err
	}
	binary["hashes"] = []any{map[string]any{"alg": "SHA-256", "content": binHash}}
	binary["properties"] = []any{map[string]any{"name": "secrets-broker:image:path", "value": "/secrets-broker"}}
	ca := map[string]any{
		"bom-ref": "file:/etc/ssl/certs/ca-certificates.crt",
		"type":    "file",
		"name":    "/etc/ssl/certs/ca-certificates.crt",
		"hashes":  []any{map[string]any{"alg": "SHA-256", "content": caHash}},
		"pedigree": map[string]any{"ancestors": []any{map[string]any{
			"type": "library", "name": "ca-certificates", "purl": caPurl,
		}}},
	}
	imageRef := "oci:" + image + ":" + version
	meta["component"] = map[string]any{
		"bom-ref": imageRef,
		"type":    "container",
		"name":    image,
		"version": version,
	}
	bom["components"] = append([]any{binary, ca}, components...)
	bom["dependencies"] = append([]any{map[string]any{"ref": imageRef, "dependsOn": []any{binary["bom-ref"], ca["bom-ref"]}}}, deps...)
	compositions, _ := bom["compositions"].([]any)
	bom["compositions"] = append([]any{map[string]any{"aggregate": "complete", "dependencies": []any{imageRef}}}, compositions...)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(bom); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

func sha256File(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
