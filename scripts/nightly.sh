#!/usr/bin/env bash
# The main job on the embedded default: install everything, then run the nightly DAG once,
# end to end, with Airflow on SQLite under ./airflow_home, the `tiny` profile, the sample
# catalog, and a file:// publish target. Ends by printing where to open the site.
#
#   scripts/nightly.sh [CATALOG] [YYYY-MM-DD]
#
# Environment: GENERATOR_PROFILE (default tiny), GALLERY_TARGET (default file://$PWD/var/public),
# and any GENERATOR_<SECTION>__<KEY> setting (see generator/defaults.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
scripts/setup_env.sh airflow
source scripts/airflow_env.sh

catalog="$(realpath "${1:-sample_data/catalog.csv}" 2>/dev/null || echo "${1}")"
night="${2:-$(date -u +%F)}"
target="${GALLERY_TARGET:-file://$root/var/public}"

airflow db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || { cat "$AIRFLOW_HOME/db-migrate.log" >&2; exit 1; }
conf=$(printf '{"catalog": "%s", "target": "%s"}' "$catalog" "$target")
echo "running nightly_gallery for $night (profile ${GENERATOR_PROFILE}) on $catalog ..."
if ! airflow dags test nightly_gallery "$night" -c "$conf" >"$root/var/nightly-$night.log" 2>&1; then
  tail -n 40 "$root/var/nightly-$night.log" >&2
  echo "error: the nightly DAG failed (full log: var/nightly-$night.log)" >&2
  exit 1
fi
report="$GENERATOR_PATHS__WORKDIR/nights/$night/report.json"
if [ ! -f "$report" ] || ! grep -q '"uploaded"' "$report"; then
  tail -n 40 "$root/var/nightly-$night.log" >&2
  echo "error: the DAG run did not publish (full log: var/nightly-$night.log)" >&2
  exit 1
fi
.venv/bin/python - "$report" <<'PY'
import json, sys
from generator.report import summary_line
print(summary_line(json.load(open(sys.argv[1]))))
PY
echo "log: var/nightly-$night.log   report: $report"
echo "UI: scripts/airflow_ui.sh (airflow standalone on http://localhost:8080)"
case "$target" in
  file://*) echo "Open the site: ${target%/}/index.html" ;;
  *) echo "Published to: $target" ;;
esac
