# The two commands README.md gives: the main job on the embedded default
# (a local key; no Vault or AWS), and the full test suite.
.PHONY: quickstart test build release-snapshot fuzz bench

quickstart:
	./scripts/quickstart.sh

test:
	./scripts/test.sh

build:
	CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$$(scripts/ldflags.sh)" -o bin/secrets-broker ./cmd/secrets-broker

# Every release artifact, unsigned, into dist/ (what .github/workflows/release.yml
# builds on a tag; see docs/releases.md).
release-snapshot:
	./scripts/release.sh --snapshot dist

# Longer fuzzing than CI does (CI runs the committed seed corpus as tests).
fuzz:
	go test ./envelope -run '^$$' -fuzz FuzzParseText -fuzztime 60s
	go test ./envelope -run '^$$' -fuzz FuzzParseFile -fuzztime 60s
	go test ./envelope -run '^$$' -fuzz FuzzCanonicalScanAgrees -fuzztime 60s
	go test ./broker/config -run '^$$' -fuzz FuzzParseConfig -fuzztime 60s
	go test ./templates -run '^$$' -fuzz FuzzTemplate -fuzztime 60s
	go test ./broker/vaultcache -run '^$$' -fuzz FuzzCacheEntry -fuzztime 60s
	go test ./internal/redact -run '^$$' -fuzz FuzzWriter -fuzztime 60s
	go test ./broker/format -run '^$$' -fuzz 'FuzzParseDotenv$$' -fuzztime 60s
	go test ./broker/format -run '^$$' -fuzz FuzzDotenvRoundTrip -fuzztime 60s
	go test ./providers/idp -run '^$$' -fuzz FuzzTokenResponse -fuzztime 60s
	go test ./broker/inject -run '^$$' -fuzz FuzzAnnotations -fuzztime 60s
	go test ./broker/inject/webhook -run '^$$' -fuzz FuzzReview -fuzztime 60s

bench:
	./bench/envelope.sh
	./bench/linear.sh
	./bench/fleet.sh
	./bench/idle.sh
	./bench/floor.sh
	./bench/kms.sh
	./bench/injector.sh
	go run ./bench/peakrss
