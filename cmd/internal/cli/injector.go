package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker/inject"
	"github.com/secrets-broker/secrets-broker/broker/inject/webhook"
)

func newInjector(env Env) *cobra.Command {
	var (
		s   webhook.Server
		lf  logFlags
		opt inject.Options
	)
	cmd := &cobra.Command{
		Use:   "injector",
		Short: "Serve the Kubernetes mutating admission webhook that adds the broker to annotated pods",
		Long: `Serve the mutating admission webhook (POST /mutate, GET /healthz) over TLS.
Pods annotated secrets-broker.io/inject: "true", or with vault-k8s's
vault.hashicorp.com/agent-inject: "true", get the broker as a native sidecar
(or, init-only, an init container), a memory-backed volume with the rendered
files mounted into their containers, and a projected service-account token
to log in to Vault with. See docs/kubernetes.md.

The certificate and key are read again when they change.`,
		Example: `  secrets-broker injector --tls-cert /tls/tls.crt --tls-key /tls/tls.key \
    --image ghcr.io/secrets-broker/secrets-broker@sha256:... --vault-address https://vault.vault.svc:8200`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var missing []string
			if s.CertFile == "" || s.KeyFile == "" {
				missing = append(missing, "--tls-cert and --tls-key (the API server calls webhooks over HTTPS only)")
			}
			if opt.Image == "" {
				missing = append(missing, "--image (the secrets-broker image to add to pods, by digest)")
			}
			if len(missing) > 0 {
				return usageErr("injector needs %s", strings.Join(missing, " and "))
			}
			if err := opt.Check(); err != nil {
				return usageErr("%v", err)
			}
			if opt.HealthPort < 1 || opt.HealthPort > 65535 {
				return usageErr("--health-port %d is not a port", opt.HealthPort)
			}
			log, err := lf.logger(env)
			if err != nil {
				return err
			}
			if !strings.Contains(opt.Image, "@sha256:") {
				log.Warn("injector: --image is not pinned by digest; pods may run different bytes under one tag", "image", opt.Image)
			}
			s.Handler = webhook.Handler{Options: opt, Log: log}
			return s.Run(cmd.Context(), func(addr string) { log.Info("injector: serving", "address", addr) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&s.Addr, "listen", ":8443", "address to serve HTTPS on")
	f.StringVar(&s.CertFile, "tls-cert", "", "PEM certificate (chain) file, read again when it changes")
	f.StringVar(&s.KeyFile, "tls-key", "", "PEM key file, read again when it changes")
	f.StringVar(&opt.Image, "image", "", "the secrets-broker image to add to pods")
	f.StringVar(&opt.VaultAddress, "vault-address", "", "Vault address for pods that name none")
	f.BoolVar(&opt.AllowInsecureHTTP, "allow-insecure-http", false, "let pods use a plain http:// Vault address off loopback (tokens and secrets cross the network in clear)")
	f.StringVar(&opt.TokenAudience, "token-audience", "vault", "audience of the projected service-account token pods log in with (\"\": the API server's own)")
	f.IntVar(&opt.HealthPort, "health-port", 9102, "loopback port of the broker's health endpoint in pods")
	f.StringVar(&opt.AuthPath, "auth-path", "", "Vault kubernetes auth mount for pods that name none (default auth/kubernetes)")
	f.StringVar(&opt.Namespace, "vault-namespace", "", "Vault namespace for pods that name none")
	f.StringVar(&opt.TLSSecret, "tls-secret", "", "a Secret mounted at /vault/tls in every injected broker (its CA for Vault), unless the pod names one")
	f.StringVar(&opt.CACert, "ca-cert", "", "CA file for Vault in the broker's container (e.g. /vault/tls/ca.crt) for pods that name none")
	f.StringVar(&opt.DefaultTemplate, "default-template", "", "vault-k8s's default template for pods that name none: map (default) or json")
	lf.register(cmd)
	return cmd
}
