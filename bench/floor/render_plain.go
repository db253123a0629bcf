//go:build floor_notemplate

package main

import (
	"bytes"
	"fmt"

	"github.com/hashicorp/vault/api"
)

// render writes each secret's password with fmt, without text/template.
func render(paths []string, secrets map[string]*api.Secret) ([]byte, error) {
	var out bytes.Buffer
	for i, p := range paths {
		data, _ := secrets[p].Data["data"].(map[string]any)
		fmt.Fprintf(&out, "s%d=%v\n", i, data["password"])
	}
	return out.Bytes(), nil
}
