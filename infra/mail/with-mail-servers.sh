#!/usr/bin/env bash
# Runs a command against a real IMAP server (dovecot) and a real SMTP server (aiosmtpd) on 127.0.0.1.
#
#   infra/mail/with-mail-servers.sh cargo test -p omnichat-tests --test integration e2e_email
#
# Installs what is missing (Debian's dovecot-imapd; a pinned aiosmtpd into the repo's .venv), starts both
# on free loopback ports with a configuration of their own in a temporary directory, exports where they are
# (below), runs the command and stops both on exit (also on failure or interrupt). Answers the command's
# exit code. OMNICHAT_MAIL_SERVERS=1 tells the e-mail tests to fail, not skip, when a server is unreachable.
#
# Both offer TLS with a certificate for "localhost" from a throwaway CA: STARTTLS on the IMAP and SMTP ports,
# TLS from the first byte on the IMAPS and SMTPS ports. SSL_CERT_FILE (the system's roots plus that CA) makes
# the command trust it, as rustls' platform verifier reads SSL_CERT_FILE on Linux.
#
# Exported: OMNICHAT_TEST_IMAP_HOST/_PORT, OMNICHAT_TEST_SMTP_HOST/_PORT, OMNICHAT_TEST_IMAPS_PORT,
# OMNICHAT_TEST_SMTPS_PORT, OMNICHAT_TEST_TLS_HOST (localhost), OMNICHAT_TEST_MAIL_PASSWORD (any
# user name logs in with it, on both servers; each user name is its own mailbox), OMNICHAT_TEST_SMTP_OUTBOX
# (the folder where the SMTP server saves every message it accepts, <n>.eml with <n>.json beside it), and
# OMNICHAT_TEST_OAUTH_TOKEN_PREFIX (the access token "<prefix><user>" logs <user> in with XOAUTH2 on both),
# and OMNICHAT_TEST_MAILDIR_ROOT (dovecot's mail, <root>/<user>: a test drops a mailbox's UID state there).
set -euo pipefail

AIOSMTPD_VERSION="1.4.6"
READY_TIMEOUT_SECONDS=30

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$repo_root/.venv"
say() { echo "with-mail-servers: $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ---------------------------------------------------------------- install
if ! command -v dovecot >/dev/null 2>&1 && [[ ! -x /usr/sbin/dovecot ]]; then
    say "installing dovecot-imapd"
    # A fresh machine has no package lists yet: update once and try again.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null 2>&1 || {
        as_root apt-get update -q >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd >/dev/null
    }
fi
dovecot_bin="$(command -v dovecot || echo /usr/sbin/dovecot)"

if [[ ! -x "$venv/bin/python" ]]; then
    say "creating virtualenv at $venv"
    python3 -m venv "$venv"
fi
# Other scripts install into the same virtualenv: one pip at a time.
(
    flock 9
    if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('aiosmtpd') != sys.argv[1])" \
        "$AIOSMTPD_VERSION" 2>/dev/null; then
        say "installing aiosmtpd $AIOSMTPD_VERSION"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
    fi
) 9<"$venv"

# ---------------------------------------------------------------- configure
# shellcheck source=infra/processes.sh
source "$repo_root/infra/processes.sh"
imap_port="$(free_port "$venv/bin/python")"
smtp_port="$(free_port "$venv/bin/python")"
imaps_port="$(free_port "$venv/bin/python")"
smtps_port="$(free_port "$venv/bin/python")"
introspection_port="$(free_port "$venv/bin/python")"
password="mail-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
token_prefix="test-access-token:"

work="$(mktemp -d "${TMPDIR:-/tmp}/omnichat-mail.XXXXXX")"
# dovecot's unprivileged processes must traverse the folder to reach its sockets and the mail.
chmod 0755 "$work"
mkdir -p "$work/run" "$work/state" "$work/mail" "$work/outbox" "$work/tls"

# A CA for this run only, and the servers' certificate for localhost (no IP address in it: a client that
# connects to 127.0.0.1 by number must refuse it).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj "/CN=omnichat test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    -keyout "$work/tls/ca.key" -out "$work/tls/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
    -keyout "$work/tls/server.key" -out "$work/tls/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$work/tls/server.ext"
openssl x509 -req -in "$work/tls/server.csr" -CA "$work/tls/ca.pem" -CAkey "$work/tls/ca.key" -CAcreateserial \
    -days 2 -extfile "$work/tls/server.ext" -out "$work/tls/server.pem" 2>/dev/null
system_roots="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
cat "$system_roots" "$work/tls/ca.pem" >"$work/tls/roots.pem" 2>/dev/null || cp "$work/tls/ca.pem" "$work/tls/roots.pem"

if [[ $(id -u) -eq 0 ]]; then
    login_user=dovenull
    internal_user=dovecot
    mail_uid="$(id -u dovecot)"
    mail_gid="$(id -g dovecot)"
    chown "$mail_uid:$mail_gid" "$work/mail"
else
    login_user="$(id -un)"
    internal_user="$(id -un)"
    mail_uid="$(id -u)"
    mail_gid="$(id -g)"
fi

cat >"$work/dovecot-oauth2.conf.ext" <<EOF
introspection_mode = post
introspection_url = http://127.0.0.1:$introspection_port/introspect
username_attribute = email
active_attribute = active
active_value = true
EOF

cat >"$work/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $work/run
state_dir = $work/state
log_path = $work/dovecot.log
info_log_path = $work/dovecot.log
ssl = yes
ssl_cert = <$work/tls/server.pem
ssl_key = <$work/tls/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
# Refused logins answer at once (the default waits 2 s): tests try wrong credentials on purpose.
auth_failure_delay = 0
default_login_user = $login_user
default_internal_user = $internal_user
first_valid_uid = $mail_uid
mail_location = maildir:$work/mail/%u
passdb {
  driver = static
  mechanisms = plain login
  args = password=$password
}
passdb {
  driver = oauth2
  mechanisms = xoauth2
  args = $work/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$work/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $imap_port
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $imaps_port
  }
}
EOF

# ---------------------------------------------------------------- start, stop on exit
dovecot_pid=""
smtp_pid=""
# shellcheck disable=SC2317  # called by the EXIT trap
stop_servers() {
    stop_pid "$smtp_pid"
    stop_pid "$dovecot_pid"
    rm -rf "$work"
}
trap stop_servers EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$dovecot_bin" -F -c "$work/dovecot.conf" >"$work/dovecot.out" 2>&1 &
dovecot_pid=$!
"$venv/bin/python" "$repo_root/infra/mail/smtp_server.py" \
    --smtp-port "$smtp_port" --smtps-port "$smtps_port" --introspection-port "$introspection_port" \
    --outbox "$work/outbox" --password "$password" --token-prefix "$token_prefix" \
    --cert "$work/tls/server.pem" --key "$work/tls/server.key" >"$work/smtp.log" 2>&1 &
smtp_pid=$!

# Ready when each greets: IMAP "* OK", SMTP "220".
greets() {
    "$venv/bin/python" - "$1" "$2" <<'PY' >/dev/null 2>&1
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    s.settimeout(1)
    sys.exit(0 if s.recv(64).startswith(sys.argv[2].encode()) else 1)
PY
}
deadline=$((SECONDS + READY_TIMEOUT_SECONDS))
until greets "$imap_port" "* OK" && greets "$smtp_port" "220"; do
    for pid in "$dovecot_pid" "$smtp_pid"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            say "a server exited before it was ready:"
            cat "$work/dovecot.out" "$work/dovecot.log" "$work/smtp.log" >&2 2>/dev/null || true
            exit 1
        fi
    done
    if ((SECONDS >= deadline)); then
        say "servers not ready after ${READY_TIMEOUT_SECONDS}s:"
        cat "$work/dovecot.out" "$work/dovecot.log" "$work/smtp.log" >&2 2>/dev/null || true
        exit 1
    fi
    sleep 0.2
done
say "dovecot $("$dovecot_bin" --version | cut -d' ' -f1) on 127.0.0.1:$imap_port, aiosmtpd $AIOSMTPD_VERSION on 127.0.0.1:$smtp_port"

export OMNICHAT_MAIL_SERVERS=1
export OMNICHAT_TEST_IMAP_HOST=127.0.0.1
export OMNICHAT_TEST_IMAP_PORT="$imap_port"
export OMNICHAT_TEST_SMTP_HOST=127.0.0.1
export OMNICHAT_TEST_SMTP_PORT="$smtp_port"
export OMNICHAT_TEST_IMAPS_PORT="$imaps_port"
export OMNICHAT_TEST_SMTPS_PORT="$smtps_port"
export OMNICHAT_TEST_TLS_HOST=localhost
export SSL_CERT_FILE="$work/tls/roots.pem"
export OMNICHAT_TEST_MAIL_PASSWORD="$password"
export OMNICHAT_TEST_SMTP_OUTBOX="$work/outbox"
export OMNICHAT_TEST_OAUTH_TOKEN_PREFIX="$token_prefix"
export OMNICHAT_TEST_MAILDIR_ROOT="$work/mail"

status=0
"$@" || status=$?
if [[ $status -ne 0 ]]; then
    # The servers' side of a failure; all of it with OMNICHAT_MAIL_LOGS=1.
    lines=40
    if [[ -n "${OMNICHAT_MAIL_LOGS:-}" ]]; then lines=100000; fi
    for log in "$work/dovecot.log" "$work/smtp.log"; do
        if [[ -s "$log" ]]; then
            say "last lines of $(basename "$log"):"
            tail -n "$lines" "$log" >&2 || true
        fi
    done
fi
exit "$status"
