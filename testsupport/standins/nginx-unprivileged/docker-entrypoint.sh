#!/bin/sh
# The stand-in's entrypoint, behaving as nginx's official one documents: when the command is nginx
# (or nginx-debug), every file in /docker-entrypoint.d/ is taken in version order, an executable
# *.envsh sourced (it may export variables for nginx), an executable *.sh run (a failure stops the
# start), anything else said and skipped; then the command replaces this shell.
# NGINX_ENTRYPOINT_QUIET_LOGS=1 silences its messages.
set -e

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    if find /docker-entrypoint.d/ -mindepth 1 -maxdepth 1 -type f -print -quit 2>/dev/null | read -r _; then
        entrypoint_log "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        # A pipeline, as there: what a sourced *.envsh exports reaches the scripts after it, not nginx.
        find /docker-entrypoint.d/ -follow -type f -print | sort -V | while read -r script; do
            case "$script" in
                *.envsh)
                    if [ -x "$script" ]; then
                        entrypoint_log "$0: Sourcing $script"
                        # shellcheck disable=SC1090 # the image's own scripts, named at run time
                        . "$script"
                    else
                        entrypoint_log "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *.sh)
                    if [ -x "$script" ]; then
                        entrypoint_log "$0: Launching $script"
                        "$script"
                    else
                        entrypoint_log "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *) entrypoint_log "$0: Ignoring $script" ;;
            esac
        done
        entrypoint_log "$0: Configuration complete; ready for start up"
    else
        entrypoint_log "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
