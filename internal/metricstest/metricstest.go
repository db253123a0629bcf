// Package metricstest owns reading the daemon's Prometheus metrics in
// tests, so that a test waits on what the daemon did, not on time.
package metricstest

import (
	"io"
	"net/http"
	"regexp"
	"strconv"
)

var vaultFetches = regexp.MustCompile(`(?m)^secrets_broker_fetches_total\{source="vault"\} (\d+)`)

// VaultFetches returns how many times the daemon serving metrics at addr
// has read Vault (secrets_broker_fetches_total{source="vault"}): -1 when
// the metrics cannot be read, 0 before the first read.
func VaultFetches(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := vaultFetches.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}
