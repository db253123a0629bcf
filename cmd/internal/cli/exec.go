package cli

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker"
)

func newExec(env Env) *cobra.Command {
	var (
		cf   configFlags
		lf   logFlags
		opts broker.ExecOptions
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] [-- COMMAND [ARGS...]]",
		Short: "Run a command with secrets in its environment (CI steps, entrypoints)",
		Long: `Fetch every declared secret and run COMMAND with them in its environment, never
on its command line. Signals are forwarded; the exit status is the command's.
If any secret is unavailable the command is not run.

The broker's own credentials (VAULT_TOKEN, AWS_* keys, SECRETS_BROKER_*) do not
reach the command unless --pass-broker-credentials.

CI: --github-actions prints ::add-mask:: for every value and every line of a
multi-line value first; --github-env appends them to $GITHUB_ENV (heredoc
syntax, random delimiter); --gitlab-dotenv writes a dotenv report artifact;
with either, COMMAND may be left out (only those files are written).
--only NAME (repeatable) fetches, passes and exports just those variables.
--redact-output replaces values, and their base64 and URL-encoded forms, in
the command's output with [redacted].`,
		Example: `  secrets-broker exec --secret DB_PASSWORD=vault:secret/data/ci#db -- ./migrate.sh
  secrets-broker exec --env-file secrets.enc.yaml --redact-output -- ./deploy.sh
  secrets-broker exec --github-actions --redact-output -c broker.yaml -- make deploy
  secrets-broker exec --github-actions --github-env - -c broker.yaml --only DB_PASSWORD`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 0 && len(args) > 0 {
				return usageErr("put the command after --: secrets-broker exec [flags] -- COMMAND [ARGS...]")
			}
			opts.Command = args
			if len(args) == 0 && opts.GitHubEnv == "" && opts.GitLabDotenv == "" {
				return usageErr("no command given: secrets-broker exec [flags] -- COMMAND [ARGS...]")
			}
			opts.NoChild = len(args) == 0
			if opts.GitHubEnv == "-" {
				opts.GitHubEnv = os.Getenv("GITHUB_ENV")
				if opts.GitHubEnv == "" {
					return usageErr("--github-env - needs $GITHUB_ENV, which is not set")
				}
			}
			cfg, err := cf.load()
			if err != nil {
				return err
			}
			b := broker.New(cfg)
			defer b.Close()
			log, err := lf.logger(env)
			if err != nil {
				return err
			}
			b.SetLogger(log)
			opts.BaseEnv = os.Environ()
			opts.Stdin, opts.Stdout, opts.Stderr = env.Stdin, env.Stdout, env.Stderr
			return b.Exec(cmd.Context(), opts)
		},
	}
	cf.register(cmd)
	lf.register(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&cf.envFiles, "env-file", nil, "a secrets file whose every entry becomes an environment variable of its name (repeatable; SOPS' exec-env)")
	f.BoolVar(&opts.Pristine, "pristine", false, "start the command with an empty environment (plus --env-allow)")
	f.StringArrayVar(&opts.Allow, "env-allow", nil, "keep only inherited variables matching this glob (repeatable)")
	f.StringArrayVar(&opts.Deny, "env-deny", nil, "drop inherited variables matching this glob (repeatable)")
	f.BoolVar(&opts.PassBrokerCredentials, "pass-broker-credentials", false, "let VAULT_TOKEN, AWS credentials and SECRETS_BROKER_* reach the command")
	f.BoolVar(&opts.GitHubActions, "github-actions", false, "print ::add-mask:: for every value (and every line) first")
	f.StringVar(&opts.GitHubEnv, "github-env", "", "append the secrets to this file with the heredoc syntax ('-' for $GITHUB_ENV)")
	f.StringArrayVar(&opts.Only, "only", nil, "fetch, pass and export only this variable (repeatable); the rest of the config's secrets stay untouched")
	f.StringVar(&opts.GitLabDotenv, "gitlab-dotenv", "", "write a GitLab dotenv report artifact here (mode 0600)")
	f.DurationVar(&opts.Timeout, "timeout", time.Minute, "keep retrying an unreachable or sealed Vault or a throttling KMS this long, then fail without running the command")
	f.BoolVar(&opts.RedactOutput, "redact-output", false, "replace secret values in the command's stdout and stderr with [redacted]")
	return cmd
}
