package envelope_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/secrets-broker/secrets-broker/envelope"
	"github.com/secrets-broker/secrets-broker/providers/local"
)

// Benchmarks print envelope figures next to raw AES-256-GCM on the same data,
// in the same run: compare the MB/s of .../envelope with .../raw-gcm.
// bench/envelope.sh prints the ratios.

var sizes = []int{100, 64 << 10}

func sizeName(n int) string {
	if n >= 1024 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func rawGCM() cipher.AEAD {
	key := make([]byte, 32)
	rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	return aead
}

func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	k := local.Generate()
	ks := []envelope.KeyWrapper{k}
	for _, n := range sizes {
		pt := make([]byte, n)
		rand.Read(pt)
		b.Run(sizeName(n)+"/envelope", func(b *testing.B) {
			e, err := envelope.Seal(ctx, pt, envelope.Binding{Name: "bench"}, k)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Open(ctx, envelope.Expect{Name: "bench"}, ks); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sizeName(n)+"/raw-gcm", func(b *testing.B) {
			aead := rawGCM()
			nonce := make([]byte, 12)
			ct := aead.Seal(nil, nonce, pt, nil)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := aead.Open(nil, nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSealOpen(b *testing.B) {
	ctx := context.Background()
	k := local.Generate()
	ks := []envelope.KeyWrapper{k}
	for _, n := range sizes {
		pt := make([]byte, n)
		rand.Read(pt)
		b.Run(sizeName(n)+"/envelope", func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				e, err := envelope.Seal(ctx, pt, envelope.Binding{Name: "bench"}, k)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Open(ctx, envelope.Expect{Name: "bench"}, ks); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sizeName(n)+"/raw-gcm", func(b *testing.B) {
			aead := rawGCM()
			nonce := make([]byte, 12)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				rand.Read(nonce)
				ct := aead.Seal(nil, nonce, pt, nil)
				if _, err := aead.Open(nil, nonce, ct, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
