#!/usr/bin/env bash
# The main job on the embedded default: install everything, then run one night of the nightly DAG
# through Airflow's scheduler (SQLite under ./airflow_home, LocalExecutor, the `smollm2` profile, the
# sample catalog, published to var/public), so the run is in the UI with its start times,
# durations and task logs. Ends by printing where to open the site and the UI.
#
#   scripts/nightly.sh [CATALOG] [YYYY-MM-DD]
#
# Environment: GENERATOR_PROFILE (default smollm2), GALLERY_TARGET (default file://$PWD/var/public),
# GALLERY_UI_PORT (8080), and any GENERATOR_<SECTION>__<KEY> setting (see generator/defaults.toml).
# The Airflow components run only for the night (scripts/airflow_services.sh); scripts/airflow_ui.sh
# brings them back to look at it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
scripts/setup_env.sh airflow
source scripts/airflow_env.sh
# Only the run triggered below: unpausing must not also start the schedule's latest interval.
export AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE=False
# Where the real Netflix snapshots sit beside the checkout, their titles are off-limits too (title-copy).
if [ -z "${GENERATOR_CURATE__TITLE_CATALOGS:-}" ]; then
  real_catalogs=$(ls ../shared/data/netflix_titles_20*.csv 2>/dev/null | paste -sd, - || true)
  [ -n "$real_catalogs" ] && export GENERATOR_CURATE__TITLE_CATALOGS="$real_catalogs"
fi
export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC=2

conf="{}"
if [ -n "${1:-}" ]; then
  catalog="$(realpath "$1" 2>/dev/null || echo "$1")"
  conf=$(printf '{"catalog": "%s"}' "$catalog")
fi
logical=()
night="$(date -u +%F)"
if [ -n "${2:-}" ]; then night="$2"; logical=(--logical-date "${night}T00:00:00+00:00"); fi
run_id="nightly__$(date -u +%Y%m%dT%H%M%S)"

scripts/airflow_services.sh stop >/dev/null 2>&1 || true
trap 'scripts/airflow_services.sh stop' EXIT
echo "starting Airflow (scheduler, dag-processor, api-server, triggerer) under $AIRFLOW_HOME ..."
scripts/airflow_services.sh start

# The dag-processor parses the DAG within seconds of starting; unpause succeeds once it has.
for attempt in $(seq 1 40); do
  if airflow dags unpause nightly_gallery >/dev/null 2>&1; then break; fi
  [ "$attempt" = 40 ] && { echo "error: nightly_gallery was not parsed (log: $AIRFLOW_HOME/services/dag-processor.log)" >&2; exit 1; }
  sleep 3
done
echo "running nightly_gallery (run $run_id, night $night, profile $GENERATOR_PROFILE) ..."
airflow dags trigger nightly_gallery --run-id "$run_id" "${logical[@]}" --conf "$conf" >/dev/null

state=""
shown=""
started=$(date +%s)
while :; do
  state=$(python3 - "$AIRFLOW_HOME/airflow.db" "$run_id" <<'PY'
import sqlite3, sys
with sqlite3.connect(sys.argv[1], timeout=30) as db:
    row = db.execute("SELECT state FROM dag_run WHERE run_id = ?", (sys.argv[2],)).fetchone()
    done = db.execute("SELECT task_id FROM task_instance WHERE run_id = ? AND state IN ('success', 'skipped') "
                      "ORDER BY end_date DESC LIMIT 1", (sys.argv[2],)).fetchone()
print((row[0] if row else "queued") + " " + (done[0] if done else "-"))
PY
)
  case "$state" in success*|failed*) break ;; esac
  if [ "${state#* }" != "$shown" ]; then  # one line per finished task: readable on a terminal and in a log
    shown="${state#* }"
    printf '  %4ss  done: %s\n' "$(( $(date +%s) - started ))" "$shown"
  fi
  sleep 5
done
ui="http://localhost:$GALLERY_UI_PORT/dags/nightly_gallery/runs/$run_id"
if [ "${state%% *}" != success ]; then
  echo "error: the night failed (fix: open the failed task's log: scripts/airflow_ui.sh, then $ui; task logs are also under $AIRFLOW_HOME/logs/)" >&2
  exit 1
fi
report=$(ls -t "$GENERATOR_PATHS__WORKDIR"/nights/*/report.json | head -n 1)
.venv/bin/python - "$report" <<'PY'
import json, sys
from generator.report import summary_line
print(summary_line(json.load(open(sys.argv[1]))))
PY
echo "report: $report"
echo "Airflow UI: scripts/airflow_ui.sh, then $ui (user admin, password in $AIRFLOW_HOME/gallery-secrets.env)"
case "$GALLERY_TARGET" in
  file://*) echo "Open the site: ${GALLERY_TARGET%/}/index.html" ;;
  *) echo "Published to: $GALLERY_TARGET" ;;
esac
