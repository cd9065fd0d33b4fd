#!/usr/bin/env bash
# Write .env at the repository root from docker/.env.example with fresh secrets and your user id.
# Never overwrites an existing .env (delete it first to start over).
#   docker/make_env.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -e .env ]; then
  echo "error: .env already exists (fix: edit it, or delete it and run docker/make_env.sh again)" >&2
  exit 2
fi
python3 - "$(id -u)" <<'PY'
import base64, os, re, secrets, sys
from pathlib import Path

values = {
    # A Fernet key is 32 random bytes, url-safe base64: no cryptography package needed here.
    "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(32),
    "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(32),
    "AIRFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(12),
    "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(24),
    "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
    "AIRFLOW_UID": sys.argv[1],
}
text = Path("docker/.env.example").read_text()
for key, value in values.items():
    text = re.sub(rf"^{key}=.*$", f"{key}={value}", text, flags=re.M)
Path(".env").write_text(text)
os.chmod(".env", 0o600)
print(f"wrote .env (admin user: airflow, password: {values['AIRFLOW_ADMIN_PASSWORD']})")
PY
