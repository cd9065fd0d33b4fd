#!/usr/bin/env bash
# Airflow's UI on the embedded default (SQLite, local executor): `airflow standalone`.
# Open http://localhost:8080 (the admin password is printed and kept in airflow_home/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh airflow
source scripts/airflow_env.sh
exec airflow standalone
