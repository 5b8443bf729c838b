#!/usr/bin/env bash
# The stand-in's entrypoint, behaving as the official postgres image documents:
# - options alone (`-c x=y`) are options of postgres;
# - POSTGRES_PASSWORD, POSTGRES_USER (default postgres), POSTGRES_DB (default the user) and
#   POSTGRES_INITDB_ARGS, each also as *_FILE (a file holding the value, e.g. a mounted Secret);
# - as root, the data and socket folders are given to postgres and the script runs again as it;
# - on an empty PGDATA: initdb as POSTGRES_USER with POSTGRES_PASSWORD, password logins from any
#   host (POSTGRES_HOST_AUTH_METHOD, default scram-sha-256), POSTGRES_DB created and
#   /docker-entrypoint-initdb.d/ run (*.sh run or sourced, *.sql and compressed *.sql fed to psql)
#   on a server that listens on its socket only, which is then stopped;
# - a PGDATA that holds a cluster is started as it is (no password needed);
# - then the command (postgres) replaces this shell.
set -Eeo pipefail

# file_env VAR [DEFAULT]: VAR from itself or from the file named by VAR_FILE, never both.
file_env() {
    local var="$1" file_var="${1}_FILE" default="${2:-}" value
    if [[ -n "${!var:-}" && -n "${!file_var:-}" ]]; then
        echo >&2 "error: both $var and $file_var are set (but are exclusive)"
        exit 1
    fi
    value="$default"
    if [[ -n "${!var:-}" ]]; then
        value="${!var}"
    elif [[ -n "${!file_var:-}" ]]; then
        value="$(<"${!file_var}")"
    fi
    export "$var"="$value"
    unset "$file_var"
}

wants_help() {
    local arg
    for arg; do
        case "$arg" in
            -'?' | --help | --describe-config | -V | --version) return 0 ;;
        esac
    done
    return 1
}

if [[ "${1:0:1}" == - ]]; then
    set -- postgres "$@"
fi

if [[ "$1" == postgres ]] && ! wants_help "$@"; then
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"

    mkdir -p "$PGDATA"
    chmod 00700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 03775 /var/run/postgresql || :

    if [[ "$(id -u)" == 0 ]]; then
        find "$PGDATA" \! -user postgres -exec chown postgres '{}' +
        find /var/run/postgresql \! -user postgres -exec chown postgres '{}' +
        exec gosu postgres "${BASH_SOURCE[0]}" "$@"
    fi

    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
            echo >&2 "error: the database is uninitialized and POSTGRES_PASSWORD is not set:"
            echo >&2 "  set it (or POSTGRES_PASSWORD_FILE) to the superuser's password,"
            echo >&2 "  or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without one (unsafe)"
            exit 1
        fi
        ls /docker-entrypoint-initdb.d/ >/dev/null

        # A user id without a passwd entry (runAsUser of any number): initdb needs a name for it,
        # which nss_wrapper gives for the duration of the set-up.
        if ! getent passwd "$(id -u)" >/dev/null; then
            for wrapper in /usr/lib/*/libnss_wrapper.so; do
                NSS_WRAPPER_PASSWD="$(mktemp)"
                NSS_WRAPPER_GROUP="$(mktemp)"
                printf 'postgres:x:%s:%s:PostgreSQL:%s:/bin/false\n' "$(id -u)" "$(id -g)" "$PGDATA" >"$NSS_WRAPPER_PASSWD"
                printf 'postgres:x:%s:\n' "$(id -g)" >"$NSS_WRAPPER_GROUP"
                export LD_PRELOAD="$wrapper" NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
            done
        fi

        # eval: POSTGRES_INITDB_ARGS is shell words ("--data-checksums --locale=C"), quotes kept.
        eval 'initdb --username="$POSTGRES_USER" --pwfile=<(printf "%s\n" "$POSTGRES_PASSWORD") '"$POSTGRES_INITDB_ARGS"

        # The server's own options (the command's words after `postgres`) count for its settings.
        server_args=("${@:2}")
        method="${POSTGRES_HOST_AUTH_METHOD:-$(postgres -C password_encryption "${server_args[@]}")}"
        printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"

        export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
        NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" \
            pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${server_args[@]}" -c "listen_addresses=" -p "${PGPORT:-5432}")" -w start

        psql_init=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
        exists="$(PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" --tuples-only \
            <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
        if [[ -z "${exists// /}" ]]; then
            PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname postgres --set db="$POSTGRES_DB" \
                <<<'CREATE DATABASE :"db";'
        fi

        for f in /docker-entrypoint-initdb.d/*; do
            case "$f" in
                *.sh)
                    if [[ -x "$f" ]]; then
                        echo "$0: running $f"
                        "$f"
                    else
                        echo "$0: sourcing $f"
                        # shellcheck disable=SC1090 # the operator's scripts, named at run time
                        . "$f"
                    fi
                    ;;
                *.sql) PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
                *.sql.gz) gunzip -c "$f" | PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
                *.sql.xz) xzcat "$f" | PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
                *.sql.zst) zstd -dc "$f" | PGHOST='' PGHOSTADDR='' "${psql_init[@]}" --dbname "$POSTGRES_DB" ;;
                *)
                    if [[ -e "$f" ]]; then
                        echo "$0: ignoring $f"
                    fi
                    ;;
            esac
        done

        pg_ctl -D "$PGDATA" -m fast -w stop
        unset PGPASSWORD
        if [[ -n "${NSS_WRAPPER_PASSWD:-}" ]]; then
            rm -f "$NSS_WRAPPER_PASSWD" "$NSS_WRAPPER_GROUP"
            unset LD_PRELOAD NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP
        fi
        echo
        echo 'PostgreSQL init process complete; ready for start up.'
        echo
    else
        echo
        echo 'PostgreSQL Database directory appears to contain a database; Skipping initialization'
        echo
    fi
fi

exec "$@"
