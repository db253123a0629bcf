package broker

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/secrets-broker/secrets-broker/providers/vault"
)

// metrics are the daemon's Prometheus metrics, in a registry of its own
// (no global state). Labels never carry values; paths are Vault request
// paths and output paths.
type metrics struct {
	reg           *prometheus.Registry
	renders       *prometheus.CounterVec
	writes        prometheus.Counter
	restores      prometheus.Counter
	fetches       *prometheus.CounterVec
	fetchErrors   *prometheus.CounterVec
	renewals      prometheus.Counter
	notifications prometheus.Counter
	notifyErrors  prometheus.Counter
	reloads       *prometheus.CounterVec
	lastSuccess   prometheus.Gauge
	expiry        *prometheus.GaugeVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg:           prometheus.NewRegistry(),
		renders:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "secrets_broker_render_passes_total", Help: "Render passes, by result (error when any output failed)."}, []string{"result"}),
		writes:        prometheus.NewCounter(prometheus.CounterOpts{Name: "secrets_broker_output_writes_total", Help: "Files written because their content changed."}),
		restores:      prometheus.NewCounter(prometheus.CounterOpts{Name: "secrets_broker_output_restores_total", Help: "Outputs deleted or changed by someone else and written back."}),
		fetches:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "secrets_broker_fetches_total", Help: "Secrets fetched again by the daemon, by source."}, []string{"source"}),
		fetchErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "secrets_broker_fetch_errors_total", Help: "Failed fetches, by source."}, []string{"source"}),
		renewals:      prometheus.NewCounter(prometheus.CounterOpts{Name: "secrets_broker_lease_renewals_total", Help: "Vault lease renewals."}),
		notifications: prometheus.NewCounter(prometheus.CounterOpts{Name: "secrets_broker_notifications_total", Help: "Notify actions run after a file changed."}),
		notifyErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "secrets_broker_notify_errors_total", Help: "Notify actions that failed."}),
		reloads:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "secrets_broker_config_reloads_total", Help: "Configuration reloads, by result."}, []string{"result"}),
		lastSuccess:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "secrets_broker_last_success_timestamp_seconds", Help: "When every output last rendered."}),
		expiry:        prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "secrets_broker_secret_expiry_timestamp_seconds", Help: "When the lease of a Vault secret expires (0: no lease)."}, []string{"path"}),
	}
	m.reg.MustRegister(m.renders, m.writes, m.restores, m.fetches, m.fetchErrors, m.renewals, m.notifications, m.notifyErrors, m.reloads, m.lastSuccess, m.expiry)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

func (m *metrics) setExpiry(path string, s *vault.Secret) {
	if s == nil {
		return
	}
	at := s.Lease.ExpiresAt()
	if at.IsZero() {
		m.expiry.WithLabelValues(path).Set(0)
		return
	}
	m.expiry.WithLabelValues(path).Set(float64(at.Unix()))
}
