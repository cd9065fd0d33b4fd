# Sourced by the scripts: project-local Airflow on SQLite (the embedded default).
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export GENERATOR_PROFILE="${GENERATOR_PROFILE:-tiny}"
export GENERATOR_PATHS__WORKDIR="${GENERATOR_PATHS__WORKDIR:-$root/var/gallery}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
mkdir -p "$AIRFLOW_HOME" "$root/var"
