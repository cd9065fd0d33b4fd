#!/usr/bin/env bash
# Airflow's UI on the embedded default (SQLite, LocalExecutor): the api-server, scheduler,
# dag-processor and triggerer of `airflow standalone`, with the settings of scripts/nightly.sh
# (same airflow_home, workdir and file:// target, so an unpaused or form-triggered night publishes
# where the main job does). Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh airflow
source scripts/airflow_env.sh
follow=""
trap '[ -n "$follow" ] && kill "$follow" 2>/dev/null; scripts/airflow_services.sh stop' EXIT
trap 'exit 130' INT TERM
scripts/airflow_services.sh start
echo "Airflow UI: http://localhost:$GALLERY_UI_PORT  (user admin, password $GALLERY_ADMIN_PASSWORD)"
echo "Trigger a night: nightly_gallery -> Trigger -> submit the form as it opens. Ctrl-C stops Airflow."
# The scheduler's log meanwhile; in the background so Ctrl-C or a TERM reaches the trap at once.
tail -n 0 -F "$AIRFLOW_HOME/services/scheduler.log" &
follow=$!
wait "$follow"
