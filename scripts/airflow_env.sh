# Sourced by the scripts: project-local Airflow on SQLite (the embedded default).
#
# The same settings serve the main job (scripts/nightly.sh) and the UI (scripts/airflow_ui.sh), so
# a run the one starts shows up in the other, and an unpaused DAG publishes where the main job does.
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$root/airflow_home}"
export AIRFLOW__CORE__DAGS_FOLDER="$root/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
# What `airflow standalone` runs: the LocalExecutor (SQLite allows it; tasks run as the scheduler's children).
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export GALLERY_UI_PORT="${GALLERY_UI_PORT:-8080}"
export AIRFLOW__API__PORT="$GALLERY_UI_PORT"
export AIRFLOW__API__BASE_URL="http://localhost:$GALLERY_UI_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$GALLERY_UI_PORT/execution/"
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-10}"
export GENERATOR_PROFILE="${GENERATOR_PROFILE:-smollm2}"
export GENERATOR_PATHS__WORKDIR="${GENERATOR_PATHS__WORKDIR:-$root/var/gallery}"
# The DAG's target param defaults to this: a scheduled or form-triggered night publishes here.
export GALLERY_TARGET="${GALLERY_TARGET:-file://$root/var/public}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
mkdir -p "$AIRFLOW_HOME" "$root/var"

# Secrets every component must share, made once and kept in airflow_home/ (gitignored):
# the api-server's JWT key (tasks authenticate with it) and the UI's admin password.
secrets="$AIRFLOW_HOME/gallery-secrets.env"
if [ ! -f "$secrets" ]; then
  ( umask 077
    python3 - >"$secrets" <<'PY'
import secrets
print(f"jwt={secrets.token_hex(32)}")
print(f"api={secrets.token_hex(32)}")
print(f"admin={secrets.token_urlsafe(12)}")
PY
  )
fi
export AIRFLOW__API_AUTH__JWT_SECRET="$(sed -n 's/^jwt=//p' "$secrets")"
export AIRFLOW__API__SECRET_KEY="$(sed -n 's/^api=//p' "$secrets")"
GALLERY_ADMIN_PASSWORD="$(sed -n 's/^admin=//p' "$secrets")"
export GALLERY_ADMIN_PASSWORD
# Simple auth manager (the embedded default's): user admin, the password above.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$AIRFLOW_HOME/simple_auth_manager_passwords.json"
printf '{"admin": "%s"}\n' "$GALLERY_ADMIN_PASSWORD" >"$AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
# The report task writes the night's summary as the run's note through the api-server.
export AIRFLOW_CONN_GALLERY_API="http://admin:$GALLERY_ADMIN_PASSWORD@127.0.0.1:$GALLERY_UI_PORT"
