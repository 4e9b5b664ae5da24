#!/bin/sh
# Vendored copy of /work/shared/bench/postfix-setup.sh, used only when that folder is absent (a fresh machine).
# Configure the Debian postfix package as a loopback smarthost relay and start it.
#
#   postfix-setup.sh [LISTEN_PORT=2526] [UPSTREAM_PORT=2527] [LOGFILE=/tmp/postfix-bench.log]
#
# - smtpd on 127.0.0.1:LISTEN_PORT only (the stock port-25 listener is commented out)
# - accepts any recipient from mynetworks=127.0.0.0/8, rejects everyone else
# - every message relays to relayhost [127.0.0.1]:UPSTREAM_PORT (smtp-sink in the benchmarks)
# - no local delivery (mydestination empty, local_transport=error)
# - queue stays in /var/spool/postfix on disk; Postfix fsyncs each queue file before 250 (stock)
# - message_size_limit raised to 50 MB (stock 10 MB would reject the 20 MB attachment test)
# - logs go to LOGFILE through postlogd (no syslog daemon in this VM)
# Originals of main.cf/master.cf are saved once to /tmp/postfix-bench-orig/.
# Everything else is left at Postfix 3.7 defaults (process limits, in_flow_delay, concurrency).
set -eu
LISTEN_PORT=${1:-2526}
UPSTREAM_PORT=${2:-2527}
LOGFILE=${3:-/tmp/postfix-bench.log}

command -v postconf >/dev/null || { echo "postfix not installed" >&2; exit 1; }
mkdir -p /tmp/postfix-bench-orig
[ -f /tmp/postfix-bench-orig/main.cf ] || cp -p /etc/postfix/main.cf /tmp/postfix-bench-orig/main.cf
[ -f /tmp/postfix-bench-orig/master.cf ] || cp -p /etc/postfix/master.cf /tmp/postfix-bench-orig/master.cf

postfix status >/dev/null 2>&1 && postfix stop || true

postconf -e \
  "myhostname = bench.local" \
  "mydomain = bench.local" \
  "myorigin = bench.local" \
  "inet_interfaces = loopback-only" \
  "inet_protocols = ipv4" \
  "mydestination =" \
  "local_recipient_maps =" \
  "local_transport = error:local delivery disabled" \
  "alias_maps =" \
  "alias_database =" \
  "relay_domains =" \
  "relayhost = [127.0.0.1]:${UPSTREAM_PORT}" \
  "mynetworks = 127.0.0.0/8" \
  "smtpd_relay_restrictions = permit_mynetworks, reject" \
  "smtpd_recipient_restrictions =" \
  "smtpd_tls_security_level = none" \
  "smtp_tls_security_level = none" \
  "message_size_limit = 52428800" \
  "maillog_file_prefixes = /var, /dev/stdout, /tmp" \
  "maillog_file = ${LOGFILE}"

# master.cf: drop the port-25 listener, add ours.
postconf -M smtp/inet >/dev/null 2>&1 && postconf -M# smtp/inet || true
postconf -M# "127.0.0.1:2526/inet" >/dev/null 2>&1 || true
postconf -Me "127.0.0.1:${LISTEN_PORT}/inet = 127.0.0.1:${LISTEN_PORT} inet n - y - - smtpd"
# postlogd must be enabled for maillog_file (it is in Debian's master.cf already)
postconf -M postlog/unix-dgram >/dev/null

# Debian normally runs this from the systemd unit: copies /etc/hosts etc. into the chroot.
/usr/lib/postfix/configure-instance.sh - >/dev/null
newaliases 2>/dev/null || true
postfix check
postfix start
sleep 1
postfix status
echo "main.cf (non-default):"; postconf -n | sed 's/^/  /'
echo "listeners:"; postconf -M | awk '$2=="inet"' | sed 's/^/  /'
