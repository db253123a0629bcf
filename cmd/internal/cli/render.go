package cli

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker"
	"github.com/secrets-broker/secrets-broker/broker/config"
	"github.com/secrets-broker/secrets-broker/broker/daemon"
	"github.com/secrets-broker/secrets-broker/broker/health"
	"github.com/secrets-broker/secrets-broker/internal/atomicfile"
)

// EnvConfig names the environment variable with the default config path.
const EnvConfig = "SECRETS_BROKER_CONFIG"

// EnvConfigYAML names the environment variable holding the config itself
// (YAML), used when no config file is given: the Kubernetes injector puts
// the config it writes there.
const EnvConfigYAML = "SECRETS_BROKER_CONFIG_YAML"

type configFlags struct {
	path      string
	secrets   []string
	templates []string
	vaultAddr string
	envFiles  []string
}

func (c *configFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&c.path, "config", "c", "", "config file, YAML or JSON (default $"+EnvConfig+")")
	cmd.Flags().StringArrayVar(&c.secrets, "secret", nil, "declare a secret NAME=REF (repeatable), e.g. DB_PASSWORD=vault:secret/data/app#password")
	cmd.Flags().StringArrayVar(&c.templates, "template", nil, "render template SRC to DST, running COMMAND (no shell) when it changes: SRC:DST[:COMMAND] (repeatable, as consul-template)")
	cmd.Flags().StringVar(&c.vaultAddr, "vault-addr", "", "Vault address (wins over the config and VAULT_ADDR)")
}

// configPath is --config, else $SECRETS_BROKER_CONFIG.
func (c *configFlags) configPath() string {
	if c.path != "" {
		return c.path
	}
	return os.Getenv(EnvConfig)
}

// source is where the config comes from; an error when there is nothing
// at all to go on.
func (c *configFlags) source() (config.Source, error) {
	src := config.Source{Path: c.configPath(), Secrets: c.secrets, Templates: c.templates, VaultAddress: c.vaultAddr, EnvFiles: c.envFiles}
	if src.Path == "" {
		src.Inline = os.Getenv(EnvConfigYAML)
	}
	if src.Path == "" && src.Inline == "" && len(src.Secrets) == 0 && len(src.Templates) == 0 && len(src.EnvFiles) == 0 {
		return src, usageErr("no configuration: give a config file (-c FILE, or $%s), or --secret NAME=REF and --template SRC:DST", EnvConfig)
	}
	return src, nil
}

func (c *configFlags) load() (*config.Config, error) {
	src, err := c.source()
	if err != nil {
		return nil, err
	}
	return src.Load()
}

func newValidate(env Env) *cobra.Command {
	var cf configFlags
	cmd := &cobra.Command{
		Use:   "validate",
		Short: "Check a config and its templates without contacting Vault or KMS",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			b := broker.New(cfg)
			defer b.Close()
			prepared, err := b.Prepare()
			if err != nil {
				return err
			}
			names, calls := broker.Needs(prepared)
			fmt.Fprintf(env.Stdout, "%s: OK: %d secret(s) declared, %d output(s), %d secret(s) and %d Vault path(s) used by templates and outputs\n",
				cfg.Source, len(cfg.Secrets), len(prepared), len(names), len(calls))
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

type renderFlags struct {
	cf      configFlags
	dryRun  bool
	timeout time.Duration
	log     logFlags
}

func (r *renderFlags) register(cmd *cobra.Command) {
	r.cf.register(cmd)
	cmd.Flags().BoolVar(&r.dryRun, "dry-run", false, "show which files would change; write nothing, print no value")
	cmd.Flags().DurationVar(&r.timeout, "timeout", time.Minute, "keep retrying an unreachable or sealed Vault or a throttling KMS this long, then fail")
	r.log.register(cmd)
}

// logFlags choose how a command logs.
type logFlags struct {
	json  bool
	level string
}

func (l *logFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&l.json, "log-json", false, "log JSON lines instead of text")
	cmd.Flags().StringVar(&l.level, "log-level", "info", "log at this level and above: debug, info, warn or error")
}

// logger logs to the command's stderr, as text or JSON lines, from the
// chosen level up. A JSON logger is also the one Main reports the
// command's error with, so that every line the command writes is JSON.
func (l *logFlags) logger(env Env) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, usageErr("--log-level %q is not debug, info, warn or error", l.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	if !l.json {
		return slog.New(slog.NewTextHandler(env.Stderr, opts)), nil
	}
	log := slog.New(slog.NewJSONHandler(env.Stderr, opts))
	if env.session != nil {
		env.session.jsonLog = log
	}
	return log, nil
}

func (r *renderFlags) run(cmd *cobra.Command, env Env) error {
	cfg, err := r.cf.load()
	if err != nil {
		return err
	}
	b := broker.New(cfg)
	defer b.Close()
	log, err := r.log.logger(env)
	if err != nil {
		return err
	}
	b.SetLogger(log)
	rep, err := b.RenderOnce(cmd.Context(), broker.RenderOptions{DryRun: r.dryRun, Timeout: r.timeout})
	for _, res := range rep.Results {
		switch {
		case res.Err != nil:
			log.Error("output failed", "path", res.Path)
		case res.Changed && r.dryRun:
			log.Info("output would change", "path", res.Path)
		case res.Changed:
			log.Info("output written", "path", res.Path)
		default:
			log.Info("output unchanged", "path", res.Path)
		}
	}
	return err
}

func newRender(env Env) *cobra.Command {
	var rf renderFlags
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Render every output once (same as run --once)",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return rf.run(cmd, env) },
	}
	rf.register(cmd)
	return cmd
}

func newRun(env Env) *cobra.Command {
	var (
		rf       renderFlags
		once     bool
		execFlag bool
		pidFile  string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep outputs fresh (sidecar); with --once, render every output and exit (init container)",
		Long: `With --once: fetch every secret, render every output in memory, write each one
atomically, and exit 0; or exit non-zero naming every output that failed, with
their previous files left intact. An unreachable or sealed Vault is retried
for --timeout, then the command fails: an init container never hangs.

Without --once (sidecar): render, then keep every output fresh until SIGTERM
or SIGINT. Vault leases are renewed and secrets re-fetched before they expire;
KV secrets are re-read every refresh.static_interval; envelope and plain files
and templates are watched. Changes are debounced (refresh.wait), only changed
files are written, and only their notify actions run. SIGHUP, or a change to
the config file, reloads the config; a config that fails to load leaves the
running one in place. Metrics and /healthz: refresh.metrics_address.

With --exec -- COMMAND (or exec.command in the config): after the first
render, start COMMAND with the secrets in its environment (the rules of the
exec command: exec.env, pristine, env_allow/env_deny, broker credentials
stripped) and supervise it: signals are forwarded, the broker exits with its
status, and when its secrets change it is restarted once per change (or sent
exec.reload_signal when only a file changed). As PID 1 the broker reaps
orphaned processes.`,
		Example: `  secrets-broker run --once -c broker.yaml          # init container
  secrets-broker run -c broker.yaml                 # sidecar
  secrets-broker run -c broker.yaml --exec -- ./server --port 8080`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case execFlag && (len(args) == 0 || cmd.ArgsLenAtDash() != 0):
				return usageErr("--exec needs the command after --: secrets-broker run -c FILE --exec -- COMMAND [ARGS...]")
			case !execFlag && len(args) > 0:
				return usageErr("unexpected argument(s); to supervise a command use: secrets-broker run -c FILE --exec -- COMMAND [ARGS...]")
			case execFlag && once:
				return usageErr("--exec supervises a command and keeps its secrets fresh, which --once does not; to run a command once with secrets use: secrets-broker exec -c FILE -- COMMAND")
			}
			if once {
				return rf.run(cmd, env)
			}
			if rf.dryRun {
				return usageErr("--dry-run goes with --once or the render command")
			}
			src, err := rf.cf.source()
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer func() { signal.Stop(hup); close(hup) }()
			reload := make(chan struct{}, 1)
			go func() {
				for range hup {
					select {
					case reload <- struct{}{}:
					default:
					}
				}
			}()
			log, err := rf.log.logger(env)
			if err != nil {
				return err
			}
			if pidFile != "" {
				if err := atomicfile.Write(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
					return fmt.Errorf("--pid-file: %w", err)
				}
				defer os.Remove(pidFile)
			}
			return daemon.Run(cmd.Context(), daemon.Options{
				Config: src, Timeout: rf.timeout,
				Logger: log, Reload: reload,
				Exec: broker.ExecOptions{Command: args, BaseEnv: os.Environ(), Stdin: env.Stdin, Stdout: env.Stdout, Stderr: env.Stderr},
			})
		},
	}
	rf.register(cmd)
	cmd.Flags().BoolVar(&once, "once", false, "render every output once and exit")
	cmd.Flags().StringVar(&pidFile, "pid-file", "", "write the daemon's process id here (removed at exit)")
	cmd.Flags().BoolVar(&execFlag, "exec", false, "start the command after -- with the secrets in its environment and supervise it")
	return cmd
}

func newHealth(env Env) *cobra.Command {
	var (
		cf      configFlags
		address string
		cert    string
		live    bool
	)
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Ask a running daemon whether it is ready (or alive): for exec probes",
		Long: `Ask the daemon started with the same config whether it is ready: every output
rendered, none failing, no secret kept at a stale value (/readyz). With --live,
whether its main loop is going round (/livez). It queries refresh.metrics_address
on loopback, so a Kubernetes exec probe needs no exposed port. Exit 0 when it
is, 5 when it is not or does not answer.`,
		Example: `  secrets-broker health -c /etc/secrets-broker/broker.yaml
  secrets-broker health --live --address 127.0.0.1:9102`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if address == "" {
				cfg, err := cf.load()
				if err != nil {
					return err
				}
				if cfg.Refresh != nil {
					address = cfg.Refresh.MetricsAddress
					if cert == "" && cfg.Refresh.MetricsTLSCert != "" {
						cert = cfg.Resolve(cfg.Refresh.MetricsTLSCert)
					}
				}
			}
			if address == "" {
				return usageErr("health needs the daemon's refresh.metrics_address (in the config given with -c, or --address); the probe queries it on loopback, no port needs to be exposed")
			}
			answer, err := health.Check(cmd.Context(), address, live, cert)
			if err != nil {
				return err
			}
			fmt.Fprint(env.Stdout, answer)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&address, "address", "", "the daemon's metrics address (default: refresh.metrics_address of the config)")
	cmd.Flags().BoolVar(&live, "live", false, "check liveness (/livez) instead of readiness (/readyz)")
	cmd.Flags().StringVar(&cert, "tls-cert", "", "speak HTTPS and accept only this certificate (default: refresh.metrics_tls_cert of the config)")
	return cmd
}
