//go:build !floor_notemplate

package main

import (
	"bytes"
	"fmt"
	"text/template"

	"github.com/hashicorp/vault/api"
)

// render puts each secret's password into the file through text/template,
// as a Vault Agent template does ({{ with secret "PATH" }}...{{ end }}).
func render(paths []string, secrets map[string]*api.Secret) ([]byte, error) {
	var src bytes.Buffer
	for i, p := range paths {
		fmt.Fprintf(&src, "s%d={{ with secret %q }}{{ .Data.data.password }}{{ end }}\n", i, p)
	}
	t, err := template.New("app").Funcs(template.FuncMap{
		"secret": func(p string) *api.Secret { return secrets[p] },
	}).Parse(src.String())
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err = t.Execute(&out, nil)
	return out.Bytes(), err
}
