#!/usr/bin/env bash
# Installs (or removes) the model release poller in the invoking user's crontab.
# Run with --help for the options. Works from any directory.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd -- "$script_dir/.." && pwd -P)
prog=install_cron.sh

default_env_file=${HOME:-}/.config/digit-poller/env
schedule='*/15 * * * *'
env_file=$default_env_file
log_file=${HOME:-}/.local/state/digit-poller/poll.log
lock_file=${XDG_RUNTIME_DIR:-/tmp}/digit-poller.lock
uninstall=0
dry_run=0

usage() {
    cat <<EOF
Usage: $prog [options]

Installs this checkout's model poller ($repo/automation/poll_model.sh)
into your crontab, as one line that ends with the marker
  # digit-poller:$repo
Installing again replaces that line (so it is safe to re-run, e.g. to change the
schedule); every other line of your crontab is kept as it is.

Options:
  --schedule "CRON EXPR"  five cron fields (default: '*/15 * * * *')
  --env-file PATH         env file the poller loads; it holds secrets and must be
                          mode 0600 (default: \$HOME/.config/digit-poller/env).
                          A commented template is created if it is missing.
  --log-file PATH         where the poller's output goes
                          (default: \$HOME/.local/state/digit-poller/poll.log)
  --lock-file PATH        flock lock file, so runs never overlap
                          (default: \${XDG_RUNTIME_DIR:-/tmp}/digit-poller.lock)
  --uninstall             remove this checkout's line from your crontab
  --dry-run               print the line that would be installed (or removed); change nothing
  -h, --help              show this help

The installed line is:
  SCHEDULE flock -n LOCK $repo/automation/poll_model.sh >> LOG 2>&1 # digit-poller:$repo
EOF
}

die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

note() {
    printf '%s: %s\n' "$prog" "$*" >&2
}

need_value() {
    [[ $# -ge 2 ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
    # --option=value is taken as --option value, so each option is parsed once below.
    if [[ $1 == --*=* ]]; then
        set -- "${1%%=*}" "${1#*=}" "${@:2}"
    fi
    case $1 in
        --schedule | --env-file | --log-file | --lock-file)
            need_value "$@"
            case $1 in
                --schedule) schedule=$2 ;;
                --env-file) env_file=$2 ;;
                --log-file) log_file=$2 ;;
                --lock-file) lock_file=$2 ;;
            esac
            shift 2
            ;;
        --uninstall)
            uninstall=1
            shift
            ;;
        --dry-run)
            dry_run=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            usage >&2
            die "unknown option: $1"
            ;;
    esac
done

# Quote a word for /bin/sh (cron runs the command with sh -c); plain words stay readable.
sh_quote() {
    if [[ $1 =~ ^[A-Za-z0-9_./:@+,=-]+$ ]]; then
        printf '%s' "$1"
    else
        local q="'\\''"
        printf "'%s'" "${1//\'/$q}"
    fi
}

# In a crontab command an unescaped % means newline, so escape every %.
cron_escape() {
    local s=$1
    printf '%s' "${s//%/\\%}"
}

absolute() {
    case $1 in
        /*) printf '%s' "$1" ;;
        *) printf '%s/%s' "$PWD" "$1" ;;
    esac
}

for value in "$repo" "$env_file" "$log_file" "$lock_file"; do
    [[ -n "$value" ]] || die "empty path (is HOME set?)"
    [[ $value != *$'\n'* && $value != *$'\r'* ]] || die "paths must not contain line breaks: '$value'"
done
env_file=$(absolute "$env_file")
log_file=$(absolute "$log_file")
lock_file=$(absolute "$lock_file")

# The schedule: exactly five cron fields.
read -r -a fields <<<"$schedule"
[[ ${#fields[@]} -eq 5 ]] ||
    die "--schedule must have exactly 5 fields (minute hour day-of-month month day-of-week), got ${#fields[@]}: '$schedule'"
for field in "${fields[@]}"; do
    [[ $field =~ ^[A-Za-z0-9*/,-]+$ ]] || die "invalid schedule field '$field' in '$schedule'"
done
schedule="${fields[*]}"

command -v crontab >/dev/null 2>&1 ||
    die "crontab not found; install cron (Debian/Ubuntu: sudo apt-get install cron)"

marker="# digit-poller:$(cron_escape "$repo")"
command_part="flock -n $(sh_quote "$lock_file") $(sh_quote "$repo/automation/poll_model.sh") >> $(sh_quote "$log_file") 2>&1"
if [[ "$env_file" != "$default_env_file" ]]; then
    command_part="POLLER_ENV_FILE=$(sh_quote "$env_file") $command_part"
fi
cron_line="$schedule $(cron_escape "$command_part") $marker"

tmp_dir=$(mktemp -d)
trap 'rm -rf -- "$tmp_dir"' EXIT
current=$tmp_dir/current
updated=$tmp_dir/updated

# The current crontab, byte for byte ("no crontab for USER" means an empty one).
had_crontab=1
if ! LC_ALL=C crontab -l >"$current" 2>"$tmp_dir/err"; then
    if grep -qi 'no crontab' "$tmp_dir/err"; then
        had_crontab=0
        : >"$current"
    else
        die "crontab -l failed: $(cat "$tmp_dir/err")"
    fi
fi

# Lines that end with our marker (awk compares bytes; values come through ENVIRON, unescaped).
marker_lines() {
    DP_MARKER="$marker" LC_ALL=C awk '
        BEGIN { m = ENVIRON["DP_MARKER"] }
        length($0) >= length(m) && substr($0, length($0) - length(m) + 1) == m
    ' "$current"
}

# Writes $updated: our line replaced in place (or appended), or removed; all else kept.
rewrite() {
    DP_MARKER="$marker" DP_LINE="$cron_line" DP_MODE="$1" LC_ALL=C awk '
        BEGIN { m = ENVIRON["DP_MARKER"]; line = ENVIRON["DP_LINE"]; mode = ENVIRON["DP_MODE"] }
        length($0) >= length(m) && substr($0, length($0) - length(m) + 1) == m {
            if (mode == "install" && !done) { print line; done = 1 }
            next
        }
        { print }
        END { if (mode == "install" && !done) print line }
    ' "$current" >"$updated"
}

write_crontab() {
    if [[ ! -s "$updated" ]]; then
        if [[ $had_crontab -eq 1 ]]; then
            crontab -r
        fi
    else
        crontab "$updated"
    fi
}

if [[ $uninstall -eq 1 ]]; then
    existing=$(marker_lines)
    if [[ -z "$existing" ]]; then
        note "no digit-poller line for $repo in your crontab; nothing to remove"
        exit 0
    fi
    if [[ $dry_run -eq 1 ]]; then
        note "dry run: would remove this line from your crontab:"
        printf '%s\n' "$existing"
        exit 0
    fi
    rewrite uninstall
    write_crontab
    note "removed the digit-poller line for $repo from your crontab"
    exit 0
fi

# Prerequisites (read-only checks first, so --dry-run reports the same problems).
command -v flock >/dev/null 2>&1 ||
    die "flock not found; install util-linux (Debian/Ubuntu: sudo apt-get install util-linux)"
[[ -x "$repo/.venv/bin/python" ]] ||
    die "$repo/.venv/bin/python not found: run make setup first (in $repo)"

create_env_template=0
if [[ -e "$env_file" ]]; then
    [[ -f "$env_file" ]] || die "env file '$env_file' is not a regular file"
    owner=$(stat -L -c '%u' -- "$env_file")
    [[ "$owner" == "$(id -u)" ]] ||
        die "env file '$env_file' is owned by uid $owner, not by you (uid $(id -u))"
    mode=$(stat -L -c '%a' -- "$env_file")
    if ((8#$mode & 8#077)); then
        die "env file '$env_file' has mode $mode; it holds secrets, so it must be 0600: chmod 600 '$env_file'"
    fi
else
    create_env_template=1
fi

lock_dir=$(dirname -- "$lock_file")
case $lock_dir in
    /run/user/*)
        note "warning: the lock file is in $lock_dir, which systemd removes when you log out" \
            "(unless lingering is enabled); consider --lock-file under your home or /tmp"
        ;;
esac

if [[ $dry_run -eq 1 ]]; then
    if [[ $create_env_template -eq 1 ]]; then
        note "dry run: would create the env file template $env_file (mode 0600)"
    fi
    if [[ "$(marker_lines)" == "$cron_line" ]]; then
        note "dry run: this line is already installed; nothing would change"
    else
        note "dry run: would install this line in your crontab:"
    fi
    printf '%s\n' "$cron_line"
    exit 0
fi

if [[ $create_env_template -eq 1 ]]; then
    (umask 077 && mkdir -p -- "$(dirname -- "$env_file")")
    (
        umask 077
        cat >"$env_file" <<EOF
# Environment of the digit-poller (automation/poll_model.sh), loaded by bash before each run.
# Keep this file private (mode 0600): it holds secrets such as GITHUB_TOKEN.
# Uncomment and fill in the settings you need; quote values that contain spaces.
#
# Where releases come from: github:OWNER/REPO, azureml:MODEL_NAME or dir:PATH
# MODEL_SOURCE=github:OWNER/REPO
# GITHUB_API_URL=https://api.github.com
# GITHUB_TOKEN=
# The poller's own clone, which it resets, commits in and pushes from: never a checkout you work in
# REPO_PATH=/var/lib/digit-poller/repo
# GIT_REMOTE=origin
# GIT_BRANCH=main
# MIN_ACCURACY=0.985
# Ed25519 public key that releases must be signed with (PEM text, a PEM file, or base64)
# MODEL_PUBLIC_KEY=
# Accept a release whose labels or input/output spec differ from the model in service
# ALLOW_INTERFACE_CHANGE=false
# Who the poller commits as; cron has no git identity of its own (git's GIT_AUTHOR_* still win)
# POLLER_GIT_NAME=digit-poller
# POLLER_GIT_EMAIL=digit-poller@localhost
# Wall-clock deadlines in seconds: listing releases, downloading one, each socket operation
# LIST_DEADLINE=60
# DOWNLOAD_DEADLINE=600
# HTTP_TIMEOUT=10
# For azureml: sources
# AZURE_SUBSCRIPTION_ID=
# AZURE_RESOURCE_GROUP=
# AZURE_ML_WORKSPACE=
# AZURE_CLIENT_ID=
# AZURE_TENANT_ID=
# AZURE_CLIENT_SECRET=
EOF
    )
    chmod 600 -- "$env_file"
    note "created the env file template $env_file (mode 0600): fill it in (at least MODEL_SOURCE)"
fi

(umask 077 && mkdir -p -- "$(dirname -- "$log_file")")
[[ -d "$lock_dir" ]] || note "warning: the lock file's folder $lock_dir does not exist yet"

found=$(marker_lines | wc -l)
rewrite install
if cmp -s "$current" "$updated"; then
    note "already installed; your crontab is unchanged:"
elif [[ $found -gt 0 ]]; then
    write_crontab
    note "updated the digit-poller line in your crontab:"
else
    write_crontab
    note "installed in your crontab:"
fi
printf '%s\n' "$cron_line"
note "output goes to $log_file"
