#!/usr/bin/env bash
# Airflow's components on the embedded default, in the background: what `airflow standalone` runs
# (api-server, scheduler, dag-processor, triggerer), each logging to airflow_home/services/<name>.log.
#
#   scripts/airflow_services.sh start   # migrate the DB, start what is not running, wait for the UI
#   scripts/airflow_services.sh stop    # stop what `start` started (by the process ids it kept)
#   scripts/airflow_services.sh status
#
# Sources scripts/airflow_env.sh; Airflow's own settings (AIRFLOW__*) in the environment win.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/airflow_env.sh
run="$AIRFLOW_HOME/services"
mkdir -p "$run"
components=(api-server scheduler dag-processor triggerer)

running() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

start() {
  airflow db migrate >"$run/db-migrate.log" 2>&1 || { tail -n 30 "$run/db-migrate.log" >&2; exit 1; }
  for name in "${components[@]}"; do
    if running "$name"; then continue; fi
    args=("$name")
    [ "$name" = api-server ] && args+=(--port "$GALLERY_UI_PORT" --workers 1)
    # Its own session, so `stop` ends the component and the task processes it forked, and nothing else.
    setsid airflow "${args[@]}" >"$run/$name.log" 2>&1 </dev/null &
    echo $! >"$run/$name.pid"
  done
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$GALLERY_UI_PORT/api/v2/monitor/health" >/dev/null 2>&1; then return 0; fi
    for name in "${components[@]}"; do
      running "$name" || { tail -n 30 "$run/$name.log" >&2; echo "error: airflow $name exited (log: $run/$name.log)" >&2; exit 1; }
    done
    sleep 2
  done
  echo "error: the api-server did not answer on port $GALLERY_UI_PORT (log: $run/api-server.log)" >&2
  exit 1
}

stop() {
  for name in "${components[@]}"; do
    if running "$name"; then kill -TERM -- "-$(cat "$run/$name.pid")" 2>/dev/null || true; fi
  done
  for _ in $(seq 1 30); do
    alive=0
    for name in "${components[@]}"; do running "$name" && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 1
  done
  for name in "${components[@]}"; do
    if running "$name"; then kill -KILL -- "-$(cat "$run/$name.pid")" 2>/dev/null || true; fi
    rm -f "$run/$name.pid"
  done
}

status() {
  for name in "${components[@]}"; do
    if running "$name"; then echo "$name: running (pid $(cat "$run/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
