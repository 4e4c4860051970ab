"""The tokens the client scenarios authenticate with (auth is on by default in skylite).

scripts/test.sh mints them on the shared server's data dir and exports them:
SKYLITE_TEST_TOKEN (read-write on `default`), SKYLITE_TEST_RO_TOKEN (read-only on `default`),
SKYLITE_TEST_ADMIN_TOKEN (admin API + every database). `mint()` makes more with
`skylite token create` (binary SKYLITE_BIN) on SKYLITE_TEST_DATA_DIR or a private server's dir.
"""
import os
import subprocess

import pytest


def _env(var: str) -> str:
    value = os.environ.get(var)
    if not value:
        pytest.fail(f"{var} is not set; run the suite through scripts/test.sh")
    return value


def token() -> str:
    return _env("SKYLITE_TEST_TOKEN")


def ro_token() -> str:
    return _env("SKYLITE_TEST_RO_TOKEN")


def admin_token() -> str:
    return _env("SKYLITE_TEST_ADMIN_TOKEN")


def mint(*flags: str, data_dir=None) -> str:
    """`skylite token create --data-dir DIR FLAGS...`; returns the token (never printed)."""
    binary = _env("SKYLITE_BIN")
    data_dir = str(data_dir) if data_dir is not None else _env("SKYLITE_TEST_DATA_DIR")
    out = subprocess.run(
        [binary, "token", "create", "--data-dir", data_dir, "--expires", "1d", *flags],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, f"token create {' '.join(flags)} failed: {out.stderr}"
    return out.stdout.strip()

