#!/bin/sh
# Vendored copy of /work/shared/bench/postfix-stop.sh, used only when that folder is absent (a fresh machine).
# Stop the benchmark Postfix and show that 2526/2527 are free.
postfix stop 2>&1 || true
i=0
while [ -f /var/spool/postfix/pid/master.pid ] && kill -0 "$(cat /var/spool/postfix/pid/master.pid 2>/dev/null)" 2>/dev/null && [ $i -lt 20 ]; do
  sleep 0.5; i=$((i + 1))
done
postfix status 2>&1 || true
ss -ltn | grep -E ':(2526|2527)\b' && echo "WARNING: port still in use" || echo "ports 2526/2527 free"
