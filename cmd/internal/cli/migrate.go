package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secrets-broker/secrets-broker/broker/migrate"
	"github.com/secrets-broker/secrets-broker/internal/fail"
	"github.com/secrets-broker/secrets-broker/internal/readlimit"
)

func newMigrate(env Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate vault-agent|consul-template CONFIG.hcl",
		Short: "Print a secrets-broker config equivalent to a Vault Agent or consul-template config",
		Long: `migrate reads a Vault Agent or consul-template configuration (HCL) and
prints an equivalent secrets-broker config (YAML) on standard output, with a
comment on every setting that has no equivalent. Check the result with
"secrets-broker validate -c broker.yaml". Templates are not rewritten: they
are used as they are.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			from := migrate.From(args[0])
			if from != migrate.VaultAgent && from != migrate.ConsulTemplate {
				return usageErr("migrate: %q is not vault-agent or consul-template", args[0])
			}
			data, err := readlimit.File(args[1], migrate.MaxInput, "config "+args[1])
			if err != nil {
				return err
			}
			out, err := migrate.Convert(data, from, args[1])
			if err != nil {
				return fail.Mark(fail.Usage, err)
			}
			_, err = fmt.Fprint(env.Stdout, string(out))
			return err
		},
	}
	return cmd
}
