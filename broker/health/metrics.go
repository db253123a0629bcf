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
	Logins        promtext.CounterVec
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
		Logins:        reg.CounterVec("secrets_broker_vault_logins_total", "Vault logins (the first and every later one), by result (ok or error).", "result"),
		expiry:        reg.GaugeVec("secrets_broker_secret_expiry_timestamp_seconds", "When the lease of a Vault secret, or an access token (path=\"token:NAME\"), expires; secrets without a lease (KV, certificates) have no series.", "path"),
	}
}

// SetTokenExpiry records when the access token of tokens: entry name
// expires, as the series path="token:NAME".
func (m *Metrics) SetTokenExpiry(name string, at time.Time) {
	m.expiry.With("token:" + name).Set(float64(at.Unix()))
}

// SetExpiry records when the lease of the Vault request shown as path
// ends. A secret without a lease has no series (a 0 would fire every
// "expires within the hour" alert), and one that lost its lease loses it.
func (m *Metrics) SetExpiry(path string, s *vault.Secret) {
	if s == nil {
		return
	}
	at := s.Lease.ExpiresAt()
	if at.IsZero() {
		m.expiry.Delete(path)
		return
	}
	m.expiry.With(path).Set(float64(at.Unix()))
}

// Login counts a Vault login attempt by its result.
func (m *Metrics) Login(err error) {
	if err != nil {
		m.Logins.With("error").Inc()
		return
	}
	m.Logins.With("ok").Inc()
}
