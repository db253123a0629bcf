package broker_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/outdir"
	"github.com/secrets-broker/secrets-broker/templates"
)

// BenchmarkRender1000 renders 1,000 template outputs from in-memory secrets.
// "render" is rendering alone; "refresh-unchanged" renders and hands every
// file to the writer when nothing changed: writes/op must be 0.
func BenchmarkRender1000(b *testing.B) {
	values := map[string]string{}
	var prepared []broker.Prepared
	for i := range 1000 {
		name := fmt.Sprintf("s%04d", i)
		values[name] = fmt.Sprintf("value-%04d-%s", i, "xxxxxxxxxxxxxxxxxxxxxxxx")
		tp, err := templates.Parse(name, fmt.Sprintf("user=app%d\npassword={{ secret %q }}\ndsn=postgres://app:{{ secret %q | urlquery }}@db:5432/app\n", i, name, name),
			templates.Options{Declared: func(n string) bool { _, ok := values[n]; return ok }})
		if err != nil {
			b.Fatal(err)
		}
		prepared = append(prepared, broker.Prepared{
			Output:   config.Output{Path: name + ".conf", Format: config.FormatTemplate},
			Spec:     outdir.Spec{Path: name + ".conf", Mode: 0o600, UID: -1, GID: -1},
			Template: tp, Secrets: tp.Secrets,
		})
	}
	res := &broker.Resolved{Values: values}
	b.Run("render", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range prepared {
				if _, err := broker.Render(p, res); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("refresh-unchanged", func(b *testing.B) {
		dir, err := outdir.Open(filepath.Join(b.TempDir(), "out"), outdir.Perms{})
		if err != nil {
			b.Fatal(err)
		}
		defer dir.Close()
		for _, p := range prepared {
			data, _ := broker.Render(p, res)
			if _, err := dir.Write(p.Spec, data); err != nil {
				b.Fatal(err)
			}
		}
		writes := 0
		b.ReportAllocs()
		for b.Loop() {
			for _, p := range prepared {
				data, err := broker.Render(p, res)
				if err != nil {
					b.Fatal(err)
				}
				changed, err := dir.Write(p.Spec, data)
				if err != nil {
					b.Fatal(err)
				}
				if changed {
					writes++
				}
			}
		}
		b.ReportMetric(float64(writes)/float64(b.N), "writes/op")
	})
}
