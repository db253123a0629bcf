package broker

import (
	"net/http"

	"github.com/secrets-broker/secrets-broker/internal/promtext"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own
// (no global state). Labels never carry values; paths are Vault request
// paths (a computed one as Broker.shownRequest names it) and output paths.
type metrics struct {
	reg           *promtext.Registry
	renders       promtext.CounterVec
	writes        promtext.Counter
	restores      promtext.Counter
	fetches       promtext.CounterVec
	fetchErrors   promtext.CounterVec
	renewals      promtext.Counter
	notifications promtext.Counter
	notifyErrors  promtext.Counter
	reloads       promtext.CounterVec
	lastSuccess   promtext.Gauge
	expiry        promtext.GaugeVec
}

func newMetrics() *metrics {
	reg := &promtext.Registry{}
	return &metrics{
		reg:           reg,
		renders:       reg.CounterVec("secrets_broker_render_passes_total", "Render passes, by result (error when any output failed).", "result"),
		writes:        reg.Counter("secrets_broker_output_writes_total", "Files written because their content changed."),
		restores:      reg.Counter("secrets_broker_output_restores_total", "Outputs deleted or changed by someone else and written back."),
		fetches:       reg.CounterVec("secrets_broker_fetches_total", "Secrets fetched again by the daemon, by source.", "source"),
		fetchErrors:   reg.CounterVec("secrets_broker_fetch_errors_total", "Failed fetches, by source.", "source"),
		renewals:      reg.Counter("secrets_broker_lease_renewals_total", "Vault lease renewals."),
		notifications: reg.Counter("secrets_broker_notifications_total", "Notify actions run after a file changed."),
		notifyErrors:  reg.Counter("secrets_broker_notify_errors_total", "Notify actions that failed."),
		reloads:       reg.CounterVec("secrets_broker_config_reloads_total", "Configuration reloads, by result.", "result"),
		lastSuccess:   reg.Gauge("secrets_broker_last_success_timestamp_seconds", "When every output last rendered."),
		expiry:        reg.GaugeVec("secrets_broker_secret_expiry_timestamp_seconds", "When the lease of a Vault secret expires (0: no lease).", "path"),
	}
}

func (m *metrics) handler() http.Handler { return m.reg.Handler() }

func (m *metrics) setExpiry(path string, s *vault.Secret) {
	if s == nil {
		return
	}
	at := s.Lease.ExpiresAt()
	if at.IsZero() {
		m.expiry.With(path).Set(0)
		return
	}
	m.expiry.With(path).Set(float64(at.Unix()))
}
