"""docs/migrate.md's async Python path, run for real: a local SQLite file goes to the suite's
server (`skylite db import`, `skylite db env --write`), the guide's async app
(examples/python/migrate_async/app.py, the guide's block verbatim, checked by
crates/skylite/tests/migrate_guide.rs) reads the rows back through `create_async_engine`, and
Alembic's async template with the guide's two lines in env.py runs the guide's commands."""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "migrate.md"
APP = ROOT / "examples" / "python" / "migrate_async" / "app.py"
USERS = [(1, "Ada"), (2, "Grace"), (3, "Ünïcødé 🚀")]
SECTION = "### Python: async SQLAlchemy"


def _clean_env():
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("TURSO_", "LIBSQL_", "SKYLITE_URL", "SKYLITE_AUTH"))}


def _run(args, cwd):
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120,
                         env=_clean_env())
    assert out.returncode == 0, f"{args}: {out.stdout}\n{out.stderr}"
    return out.stdout


def _guide_blocks():
    """The fenced blocks of the guide's async Python section, as (language, text)."""
    text = GUIDE.read_text()
    section = text[text.index(SECTION):]
    section = section[:section.index("\n### ", 1)]
    return re.findall(r"```(\w*)\n(.*?)```", section, re.S)


def test_the_guides_async_app_and_alembic_run_against_the_server(tmp_path):
    server_url = os.environ.get("SKYLITE_TEST_URL")
    admin = os.environ.get("SKYLITE_TEST_ADMIN_TOKEN")
    binary = os.environ.get("SKYLITE_BIN")
    if not (server_url and admin and binary):
        pytest.skip("needs SKYLITE_TEST_URL, SKYLITE_TEST_ADMIN_TOKEN and SKYLITE_BIN (scripts/test.sh)")

    db = sqlite3.connect(tmp_path / "app.db")
    db.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);")
    db.executemany("INSERT INTO users VALUES (?, ?)", USERS)
    db.commit()
    db.close()
    name = "guide-aio-" + uuid.uuid4().hex[:8]
    server = ["--url", server_url, "--token", admin]
    _run([binary, "db", "import", "app.db", "--name", name, *server], tmp_path)
    _run([binary, "db", "env", name, "--write", *server], tmp_path)

    shutil.copy(APP, tmp_path / "app.py")
    out = _run([sys.executable, "app.py"], tmp_path)
    assert out.splitlines() == [f"{i} {n}" for i, n in USERS]

    blocks = _guide_blocks()
    commands = [line.split("#", 1)[0].strip() for lang, body in blocks if lang == "sh"
                for line in body.splitlines() if line.startswith("alembic ")]
    assert commands[0] == "alembic init -t async migrations", commands
    env_lines = next(body for lang, body in blocks
                     if lang == "python" and "set_main_option" in body)
    alembic = [sys.executable, "-m", "alembic"]
    for command in commands:
        args = re.findall(r'"[^"]*"|\S+', command)[1:]
        out = _run(alembic + [a.strip('"') for a in args], tmp_path)
        if args[0] == "init":
            env_py = tmp_path / "migrations" / "env.py"
            source = env_py.read_text()
            anchor = "config = context.config\n"
            assert anchor in source
            env_py.write_text(source.replace(anchor, anchor + "\n" + env_lines, 1))
        elif args[0] == "revision":
            # The guide's upgrade(): one column added.
            (script,) = (tmp_path / "migrations" / "versions").glob("*.py")
            source = script.read_text()
            source = source.replace(
                'def upgrade() -> None:\n    """Upgrade schema."""\n    pass',
                'def upgrade() -> None:\n    op.add_column("users", sa.Column("email", sa.String()))',
                1)
            assert 'op.add_column("users"' in source, source
            script.write_text(source)
        elif args[0] == "current":
            assert "(head)" in out, out

    # The column is on the server, the rows are intact.
    import skylite

    env = dict(line.split("=", 1) for line in (tmp_path / ".env").read_text().splitlines()
               if line.startswith("TURSO_"))
    con = skylite.connect(env["TURSO_DATABASE_URL"], auth_token=env["TURSO_AUTH_TOKEN"])
    try:
        cur = con.execute("SELECT id, name, email FROM users ORDER BY id")
        assert cur.fetchall() == [(i, n, None) for i, n in USERS]
        assert con.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    finally:
        con.close()
