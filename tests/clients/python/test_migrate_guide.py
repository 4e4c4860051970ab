"""docs/migrate.md, run for real: a local SQLite file goes to the server with
`skylite db import`, `skylite db env --write` writes .env, and the guide's SQLAlchemy app
(migrate_app.py, included verbatim in the guide) reads the same rows back."""
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import tokens

HERE = Path(__file__).resolve().parent
USERS = [(1, "Ada"), (2, "Grace"), (3, "Ünïcødé 🚀")]


def _skylite(*args, cwd):
    out = subprocess.run([os.environ["SKYLITE_BIN"], *args], cwd=cwd, capture_output=True,
                         text=True, timeout=120, env={k: v for k, v in os.environ.items()
                                                      if not k.startswith(("TURSO_", "LIBSQL_", "SKYLITE_URL", "SKYLITE_AUTH"))})
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_the_guides_sqlalchemy_app_reads_the_imported_rows(server_url, tmp_path):
    db = sqlite3.connect(tmp_path / "app.db")
    db.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
    db.executemany("INSERT INTO users VALUES (?, ?)", USERS)
    db.commit()
    db.close()
    name = "guide-py-" + uuid.uuid4().hex[:8]
    server = ["--url", server_url, "--token", tokens.admin_token()]
    _skylite("db", "import", "app.db", "--name", name, *server, cwd=tmp_path)
    _skylite("db", "env", name, "--write", *server, cwd=tmp_path)
    assert (tmp_path / ".env").read_text().count("TURSO_AUTH_TOKEN=") == 1

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TURSO_", "LIBSQL_"))}
    out = subprocess.run([sys.executable, str(HERE / "migrate_app.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{i} {n}" for i, n in USERS]
