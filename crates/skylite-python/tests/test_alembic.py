"""Alembic against skylite: ``alembic init -t async``, a migration that creates a table and a
batch migration (SQLite's copy-and-move table rebuild) upgrade and downgrade, through the
asyncio dialect, on the server and on a local file."""
import subprocess
import sys
import textwrap
import urllib.parse

import pytest

pytest.importorskip("alembic")

import skylite  # noqa: E402


def sa_url(target):
    kind, url, token = target
    if kind == "file":
        return f"sqlite+skylite:///{url[len('file:'):]}"
    parsed = urllib.parse.urlsplit(url)
    query = f"?authToken={token}" if token else ""
    return f"sqlite+skylite://{parsed.netloc}/{query}"


def alembic(cwd, *args):
    run = subprocess.run([sys.executable, "-m", "alembic", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_async_template_and_batch_migrations(target, tmp_path, name):
    # The server's database is shared with other runs: start from no recorded revision.
    with skylite.connect(target[1], auth_token=target[2]) as con:
        con.execute("DROP TABLE IF EXISTS alembic_version")
    alembic(tmp_path, "init", "-t", "async", "migrations")
    ini = tmp_path / "alembic.ini"
    text = ini.read_text()
    # configparser interpolation: a literal % must be doubled.
    url = sa_url(target).replace("%", "%%")
    ini.write_text(text.replace("driver://user:pass@localhost/dbname", url))
    versions = tmp_path / "migrations" / "versions"
    (versions / "0001_create.py").write_text(textwrap.dedent(f'''
        import sqlalchemy as sa
        from alembic import op

        revision = "0001"
        down_revision = None

        def upgrade():
            op.create_table(
                "{name}",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("title", sa.String(50), nullable=False),
            )
            op.execute("INSERT INTO {name} (title) VALUES ('first'), ('second')")

        def downgrade():
            op.drop_table("{name}")
    '''))
    (versions / "0002_batch.py").write_text(textwrap.dedent(f'''
        import sqlalchemy as sa
        from alembic import op

        revision = "0002"
        down_revision = "0001"

        def upgrade():
            with op.batch_alter_table("{name}", recreate="always") as batch:
                batch.add_column(sa.Column("done", sa.Boolean, nullable=False,
                                           server_default=sa.false()))
                batch.alter_column("title", type_=sa.String(200))
                batch.create_index("ix_{name}_title", ["title"])

        def downgrade():
            with op.batch_alter_table("{name}", recreate="always") as batch:
                batch.drop_index("ix_{name}_title")
                batch.drop_column("done")
    '''))
    alembic(tmp_path, "upgrade", "head")
    assert "0002 (head)" in alembic(tmp_path, "current")
    con = skylite.connect(target[1], auth_token=target[2])
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({name})").fetchall()]
    assert cols == ["id", "title", "done"]
    assert con.execute(f"SELECT title, done FROM {name} ORDER BY id").fetchall() == [
        ("first", 0), ("second", 0)]
    alembic(tmp_path, "downgrade", "0001")
    cols = [r[1] for r in con.execute(f"PRAGMA table_info({name})").fetchall()]
    assert cols == ["id", "title"]
    alembic(tmp_path, "downgrade", "base")
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = ?", (name,)).fetchone() == (0,)
    con.execute("DROP TABLE IF EXISTS alembic_version")
    con.close()
