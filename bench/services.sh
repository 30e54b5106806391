#!/usr/bin/env bash
# What `make bench` needs besides the venv: wrk (the load generator) and a Redis server on
# 127.0.0.1:6379, both from Debian's packages, installed and started only when missing.
# Set BENCH_REDIS_URL to use another Redis (then none is started here).
set -euo pipefail

missing=()
command -v wrk >/dev/null || missing+=(wrk)
if [ -z "${BENCH_REDIS_URL:-}" ] && ! command -v redis-server >/dev/null; then
  missing+=(redis-server)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench: installing ${missing[*]} (Debian packages)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${BENCH_REDIS_URL:-}" ] && ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  echo "bench: starting redis-server on 127.0.0.1:6379" >&2
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi
