#!/usr/bin/env bash
# Runs one poll of the model release poller (python -m digit_poller --once).
# This is what the crontab line written by install_cron.sh calls; it can also be run by hand.
#
# Environment:
#   POLLER_ENV_FILE  env file to load (default: $HOME/.config/digit-poller/env). Loaded only if it
#                    exists; it must be owned by the user and not readable/writable by group or
#                    others (mode 0600 or stricter), because it holds secrets such as GITHUB_TOKEN.
#   POLLER_PYTHON    python to run (default: <repo>/.venv/bin/python).
#   REPO_PATH        required: the poller's own clone (it resets and commits there).
# Extra arguments are passed to the poller. Exit codes are the poller's:
# 0 updated or nothing new, 1 error, 2 candidate rejected.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd -- "$script_dir/.." && pwd -P)

die() {
    printf 'poll_model.sh: %s\n' "$*" >&2
    exit 1
}

env_file=${POLLER_ENV_FILE:-${HOME:-}/.config/digit-poller/env}

if [[ -e "$env_file" ]]; then
    [[ -f "$env_file" ]] || die "env file '$env_file' is not a regular file"
    owner=$(stat -L -c '%u' -- "$env_file")
    [[ "$owner" == "$(id -u)" ]] ||
        die "refusing env file '$env_file': it is owned by uid $owner, not by you (uid $(id -u))"
    mode=$(stat -L -c '%a' -- "$env_file")
    if ((8#$mode & 8#077)); then
        die "refusing env file '$env_file': mode $mode lets group or others access it" \
            "(it may hold secrets); run: chmod 600 '$env_file'"
    fi
    [[ -r "$env_file" ]] || die "env file '$env_file' is not readable"
    # Export every variable the file sets. Its contents are never printed.
    set -a
    # shellcheck disable=SC1090
    . "$env_file"
    set +a
fi

python=${POLLER_PYTHON:-$repo/.venv/bin/python}
[[ -x "$python" ]] || die "python '$python' not found or not executable; run make setup first"

# No default for REPO_PATH: the poller resets and commits in it, so it must be a clone of its own,
# never this checkout someone works in. The poller names the variable when it is missing.
# digit_poller is installed in that python's environment (make setup), so no path is set here.

cd -- "$repo"
exec "$python" -m digit_poller --once "$@"
