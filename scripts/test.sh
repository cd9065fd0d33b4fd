#!/usr/bin/env bash
# Install everything the tests need (venv, Chromium, PostgreSQL/Redis when missing) and run the suite.
#   scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh airflow,test
if [ -x scripts/install_browser.sh ]; then scripts/install_browser.sh; fi
if [ -x scripts/start_services.sh ]; then scripts/start_services.sh || echo "warning: PostgreSQL/Redis unavailable; distributed tests will skip" >&2; fi
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m pytest -q -ra "$@"
