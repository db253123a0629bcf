#!/usr/bin/env bash
# action-export.sh: run by action.sh as secrets-broker exec's command, with
# every secret in its environment (already masked by --github-actions):
# writes each to GITHUB_ENV with a random heredoc delimiter that the value
# does not hold, and the names to GITHUB_OUTPUT.
set -euo pipefail
read -r -a names <<<"${SB_EXPORT_NAMES:-}"
put() { # file name value
	local delim
	delim="SB_$RANDOM$RANDOM$RANDOM$RANDOM"
	while [[ "$3" == *"$delim"* ]]; do delim="SB_$RANDOM$RANDOM$RANDOM$RANDOM"; done
	printf '%s<<%s\n%s\n%s\n' "$2" "$delim" "$3" "$delim" >>"$1"
}
for n in "${names[@]}"; do
	v="${!n-}"
	put "$GITHUB_ENV" "$n" "$v"
done
echo "names=${names[*]}" >>"$GITHUB_OUTPUT"
echo "secrets-broker: ${#names[@]} secret(s) exported, masked"
