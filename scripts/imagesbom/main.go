// Command imagesbom writes the CycloneDX SBOM of one release image from the
// SBOM of the binary it holds (cyclonedx-gomod's, every linked module) and
// the root file system scripts/release.sh made for it: the image becomes
// the described component, and every file in it a part, with its SHA-256
// (the binary is the binary's SBOM's component). Nothing else is in the
// image (scripts/release.Dockerfile is FROM scratch), so nothing else is
// listed; a file it does not know is an error, not an omission.
//
//	go run ./scripts/imagesbom OUT BINARY.sbom.cdx.json IMAGE VERSION ROOTFS
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
	if len(args) != 5 {
		return fmt.Errorf("usage: imagesbom OUT BINARY.sbom.cdx.json IMAGE VERSION ROOTFS")
	}
	out, binSBOM, image, version, rootfs := args[0], args[1], args[2], args[3], args[4]
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
	parts := []any{binary}
	refs := []any{binary["bom-ref"]}
	err = filepath.WalkDir(rootfs, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(rootfs, path)
		hash, err := sha256File(path)
		if err != nil {
			return err
		}
		sum := []any{map[string]any{"alg": "SHA-256", "content": hash}}
		switch rel {
		case "secrets-broker":
			binary["hashes"] = sum
			binary["properties"] = []any{map[string]any{"name": "secrets-broker:image:path", "value": "/secrets-broker"}}
		case "etc/passwd", "etc/group":
			ref := "file:/" + rel
			parts = append(parts, map[string]any{"bom-ref": ref, "type": "file", "name": "/" + rel, "hashes": sum})
			refs = append(refs, ref)
		default:
			return fmt.Errorf("%s: the image's root file system holds %s, which this SBOM does not describe", rootfs, rel)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if binary["hashes"] == nil {
		return fmt.Errorf("%s holds no secrets-broker binary", rootfs)
	}
	imageRef := "oci:" + image + ":" + version
	meta["component"] = map[string]any{
		"bom-ref": imageRef,
		"type":    "container",
		"name":    image,
		"version": version,
	}
	bom["components"] = append(parts, components...)
	bom["dependencies"] = append([]any{map[string]any{"ref": imageRef, "dependsOn": refs}}, deps...)
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
