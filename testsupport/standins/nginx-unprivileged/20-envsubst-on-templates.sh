#!/bin/sh
# As nginx's official image documents it: each *.template under NGINX_ENVSUBST_TEMPLATE_DIR
# (/etc/nginx/templates) is written, without the suffix, to the same relative path under
# NGINX_ENVSUBST_OUTPUT_DIR (/etc/nginx/conf.d), with the placeholders of variables that are set
# (names matching NGINX_ENVSUBST_FILTER, a regular expression, when given) replaced; nginx's own
# $variables stay. No template folder: nothing to do. An output folder it cannot write: said, and
# the start goes on (nginx then starts without the rendered files).
set -e

ME=$(basename "$0")

entrypoint_log() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    entrypoint_log "$ME: ERROR: $template_dir exists, but $output_dir is not writable"
    exit 0
fi

# The names of the variables that are set, as envsubst's SHELL-FORMAT: ${NAME} ${OTHER} ...
# (The filter goes into awk's program as a /regex/, as there, not through -v, which would read
# its backslashes as escapes.)
defined_envs=$(awk "END { for (name in ENVIRON) if (name ~ /${filter}/) printf \"\${%s} \", name }" </dev/null)

find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative_path="${template#"$template_dir/"}"
    output_path="$output_dir/${relative_path%"$suffix"}"
    mkdir -p "$(dirname "$output_path")"
    entrypoint_log "$ME: Running envsubst on $template to $output_path"
    envsubst "$defined_envs" <"$template" >"$output_path"
done
