#!/usr/bin/env bash
# A throwaway single-node Ceph cluster with a radosgw (S3) on loopback, for tests and benchmarks.
#
#   scripts/ceph.sh install          apt-get the Ceph packages when missing
#   scripts/ceph.sh start            install if needed, boot mon + osd + gateway (idempotent, fast when up)
#   scripts/ceph.sh stop             stop every daemon by its pid file and wait for it to exit
#   scripts/ceph.sh env              print the endpoint and keys as shell exports
#   scripts/ceph.sh status           exit 0 when the gateway answers
#   scripts/ceph.sh gateway-start N  start the extra gateway N (b) on its own port, same cluster
#   scripts/ceph.sh gateway-kill N   SIGKILL gateway N (tests: "gateway killed mid-transfer")
#
# All state lives under CEPH_DIR (default: .tmp/ceph in the repo; git-ignored). The OSD uses
# memstore: data lives in memory and is lost when the cluster stops. Ports: CEPH_MON_PORT (16789),
# CEPH_RGW_PORT (17480), CEPH_RGW2_PORT (17481). See ../shared COMPONENTS.md for the recipe.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
D="${CEPH_DIR:-$REPO/.tmp/ceph}"
MON_PORT="${CEPH_MON_PORT:-16789}"
RGW_PORT="${CEPH_RGW_PORT:-17480}"
RGW2_PORT="${CEPH_RGW2_PORT:-17481}"
ACCESS_KEY="${CEPH_ACCESS_KEY:-DEPLOYTOOLTESTKEY000}"
SECRET_KEY="${CEPH_SECRET_KEY:-deploy-tool-test-secret-key-0000000000000}"
CONF="$D/ceph.conf"

log() { echo "[ceph] $*" >&2; }

have_packages() {
  command -v radosgw >/dev/null 2>&1 && command -v ceph-mon >/dev/null 2>&1 &&
    command -v ceph-osd >/dev/null 2>&1 && command -v radosgw-admin >/dev/null 2>&1 &&
    command -v monmaptool >/dev/null 2>&1 && command -v uuidgen >/dev/null 2>&1 &&
    command -v curl >/dev/null 2>&1
}

cmd_install() {
  have_packages && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing radosgw ceph-mon ceph-osd (about 20 s)"
  if ! apt-cache show radosgw >/dev/null 2>&1 || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock || true)" ]; then
    $sudo apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq radosgw ceph-mon ceph-osd ceph-mgr- uuid-runtime curl >/dev/null
  have_packages || { log "installation failed"; exit 1; }
}

pid_alive() { # pidfile
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Runs a daemon (which forks itself into the background) with no inherited descriptors: the lock
# and the caller's pipes must not stay open in the daemons.
detach() {
  (
    for fd in /proc/$BASHPID/fd/*; do
      n=${fd##*/}
      if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-" 2>/dev/null || true; fi
    done
    exec "$@" </dev/null >>"$D/log/daemons.out" 2>&1
  )
}

gw_up() { # port
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"
}

wait_for() { # seconds description command...
  local secs=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  log "timed out after ${secs}s waiting for $what (logs: $D/log)"
  return 1
}

write_conf() {
  local fsid
  fsid="$(uuidgen)"
  mkdir -p "$D/run" "$D/log" "$D/mon" "$D/osd"
  cat >"$CONF" <<EOF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$MON_PORT
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_warn = 1
mon_data_avail_crit = 0
ms_bind_msgr2 = false
run_dir = $D/run
log_file = $D/log/\$name.log
admin_socket = $D/run/\$name.asok
pid_file = $D/run/\$name.pid
[mon]
mon_data = $D/mon/\$id
[osd]
osd_data = $D/osd/\$id
osd_objectstore = memstore
memstore_device_bytes = 4294967296
[client]
keyring = $D/keyring
rgw_enable_usage_log = false
rgw_enable_ops_log = false
# Deleted objects' data is reclaimed by radosgw's garbage collector, by default two hours later and
# once an hour: benchmarks that drop their buckets would fill the 4 GiB memstore long before that.
rgw_gc_obj_min_wait = 0
rgw_gc_processor_period = 10
rgw_gc_processor_max_time = 10
# tcp_nodelay: without it, beast sends a response's headers and body as two segments with Nagle's
# algorithm on, and the second waits for the client's delayed ACK: every GET (even a 404) took 45-50
# ms on loopback against 3 ms for a HEAD. Production gateways set it for the same reason.
[client.rgw.a]
rgw_frontends = beast endpoint=127.0.0.1:$RGW_PORT tcp_nodelay=1
[client.rgw.b]
rgw_frontends = beast endpoint=127.0.0.1:$RGW2_PORT tcp_nodelay=1
EOF
  echo "$fsid"
}

start_gateway() { # name port
  local name=$1 port=$2
  if pid_alive "$D/run/client.rgw.$name.pid" && gw_up "$port"; then return 0; fi
  if pid_alive "$D/run/client.rgw.$name.pid"; then
    wait_for 30 "gateway $name on port $port" gw_up "$port"
    return
  fi
  detach radosgw -c "$CONF" -n "client.rgw.$name"
  wait_for 60 "gateway $name on port $port" gw_up "$port"
}

osd_up() {
  timeout 10 ceph -c "$CONF" --connect-timeout 5 osd stat 2>/dev/null | grep -q ': 1 up'
}

start_osd() { # id
  local id=$1 try i
  for ((try = 1; try <= 20; try++)); do
    # Sometimes the OSD's first command to the monitor leaves before it has the monitor map
    # ("wrong fsid" in log/daemons.out), and ceph-osd exits (status 250) instead of going to the
    # background: start it again.
    detach ceph-osd -c "$CONF" -i "$id" || log "ceph-osd exited with status $? (attempt $try of 20)"
    for ((i = 0; i < 120; i++)); do
      if osd_up; then return 0; fi
      if ((i > 6)) && ! pid_alive "$D/run/osd.$id.pid"; then break; fi
      sleep 0.5
    done
    if pid_alive "$D/run/osd.$id.pid"; then kill "$(cat "$D/run/osd.$id.pid")" 2>/dev/null || true; fi
    sleep 1
  done
  log "osd.$id did not come up after 20 attempts (logs: $D/log)"
  return 1
}

port_taken() { # port
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

boot() {
  log "booting a single-node cluster in $D"
  # Another cluster on this machine (another clone's .tmp/ceph) answering on our ports would hand
  # our OSD its own fsid ("wrong fsid"): say so instead of failing obscurely.
  local port
  for port in "$MON_PORT" "$RGW_PORT"; do
    if port_taken "$port"; then
      log "port $port on 127.0.0.1 is already in use (another Ceph cluster? stop it with its scripts/ceph.sh stop)"
      exit 1
    fi
  done
  rm -rf "$D"
  mkdir -p "$D"
  local fsid uuid id
  fsid="$(write_conf)"
  ceph-authtool --create-keyring "$D/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  monmaptool --create --addv a "v1:127.0.0.1:$MON_PORT" --fsid "$fsid" "$D/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$D/monmap" --keyring "$D/keyring"
  detach ceph-mon -c "$CONF" -i a
  uuid="$(uuidgen)"
  id="$(timeout 60 ceph -c "$CONF" --connect-timeout 30 osd new "$uuid")"
  mkdir -p "$D/osd/$id"
  ceph-osd -c "$CONF" -i "$id" --mkfs --osd-uuid "$uuid" >/dev/null 2>&1
  start_osd "$id"
  start_gateway a "$RGW_PORT"
  timeout 60 radosgw-admin -c "$CONF" user create --uid=test --display-name=test \
    --access-key="$ACCESS_KEY" --secret="$SECRET_KEY" >/dev/null
  touch "$D/ready"
  log "ready: http://127.0.0.1:$RGW_PORT"
}

cluster_alive() {
  [ -f "$D/ready" ] && pid_alive "$D/run/mon.a.pid" && pid_alive "$D/run/osd.0.pid"
}

cmd_start() {
  cmd_install
  mkdir -p "$D"
  exec 9>"$D.lock"
  flock 9
  if cluster_alive; then
    start_gateway a "$RGW_PORT"
  else
    stop_all
    boot
  fi
}

stop_all() {
  [ -d "$D/run" ] || return 0
  local f pids=()
  for f in "$D"/run/*.pid; do
    [ -s "$f" ] || continue
    local p
    p="$(cat "$f")"
    if kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      pids+=("$p")
    fi
  done
  local p i
  for p in "${pids[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    while kill -0 "$p" 2>/dev/null; do sleep 0.1; done
  done
  rm -f "$D/ready"
}

cmd_stop() {
  [ -d "$D" ] || return 0
  exec 9>"$D.lock"
  flock 9
  stop_all
  log "stopped"
}

cmd_env() {
  echo "export CEPH_S3_ENDPOINT=http://127.0.0.1:$RGW_PORT"
  echo "export CEPH_S3_ENDPOINT2=http://127.0.0.1:$RGW2_PORT"
  echo "export CEPH_S3_ACCESS_KEY=$ACCESS_KEY"
  echo "export CEPH_S3_SECRET_KEY=$SECRET_KEY"
  echo "export CEPH_DIR=$D"
}

gateway_port() {
  case "$1" in
    a) echo "$RGW_PORT" ;;
    b) echo "$RGW2_PORT" ;;
    *)
      log "unknown gateway $1 (a or b)"
      exit 2
      ;;
  esac
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  env) cmd_env ;;
  status) cluster_alive && gw_up "$RGW_PORT" ;;
  gateway-start)
    cluster_alive || { log "cluster not running: scripts/ceph.sh start"; exit 1; }
    start_gateway "${2:?gateway name}" "$(gateway_port "$2")"
    ;;
  gateway-kill)
    port="$(gateway_port "${2:?gateway name}")"
    f="$D/run/client.rgw.$2.pid"
    if pid_alive "$f"; then
      p="$(cat "$f")"
      kill -9 "$p"
      while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    fi
    ;;
  *)
    echo "usage: $0 {install|start|stop|env|status|gateway-start NAME|gateway-kill NAME}" >&2
    exit 2
    ;;
esac
