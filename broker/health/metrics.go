package health

import (
	"time"

	"github.com/secrets-broker/secrets-broker/internal/promtext"
	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// Metrics are the daemon's Prometheus metrics, in a registry of its own
// (no global state). Labels never carry values; paths are Vault request
// paths (a computed one as the broker names it: computed:HASH) and output
// paths.
type Metrics struct {
	reg           *promtext.Registry
	Renders       promtext.CounterVec
	Writes        promtext.Counter
	Restores      promtext.Counter
	Fetches       promtext.CounterVec
	FetchErrors   promtext.CounterVec
	Renewals      promtext.Counter
	Notifications promtext.Counter
	NotifyErrors  promtext.Counter
	Reloads       promtext.CounterVec
	LastSuccess   promtext.Gauge
	expiry        promtext.GaugeVec
}

// NewMetrics registers the daemon's metrics.
func NewMetrics() *Metrics {
	reg := &promtext.Registry{}
	return &Metrics{
		reg:           reg,
		Renders:       reg.CounterVec("secrets_broker_render_passes_total", "Render passes, by result (error when any output failed).", "result"),
		Writes:        reg.Counter("secrets_broker_output_writes_total", "Files written because their content changed."),
		Restores:      reg.Counter("secrets_broker_output_restores_total", "Outputs deleted or changed by someone else and written back."),
		Fetches:       reg.CounterVec("secrets_broker_fetches_total", "Secrets fetched again by the daemon, by source.", "source"),
		FetchErrors:   reg.CounterVec("secrets_broker_fetch_errors_total", "Failed fetches, by source.", "source"),
		Renewals:      reg.Counter("secrets_broker_lease_renewals_total", "Vault lease renewals."),
		Notifications: reg.Counter("secrets_broker_notifications_total", "Notify actions run after a file changed."),
		NotifyErrors:  reg.Counter("secrets_broker_notify_errors_total", "Notify actions that failed."),
		Reloads:       reg.CounterVec("secrets_broker_config_reloads_total", "Configuration reloads, by result.", "result"),
		LastSuccess:   reg.Gauge("secrets_broker_last_success_timestamp_seconds", "When every output last rendered."),
		expiry:        reg.GaugeVec("secrets_broker_secret_expiry_timestamp_seconds", "When the lease of a Vault secret, or an access token (path=\"token:NAME\"), expires (0: no lease).", "path"),
	}
}

// SetTokenExpiry records when the access token of tokens: entry name
// expires, as the series path="token:NAME".
func (m *Metrics) SetTokenExpiry(name string, at time.Time) {
	m.expiry.With("token:" + name).Set(float64(at.Unix()))
}

// SetExpiry records when the lease of the Vault request shown as path
// ends (0: it has none).
func (m *Metrics) SetExpiry(path string, s *vault.Secret) {
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
