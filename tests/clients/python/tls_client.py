"""One TLS client scenario, run by test_tls.py in a child process so that the certificate can be
trusted the way a user does it: `SSL_CERT_FILE=cert.pem` in the environment, set before any
client library is imported (aiohttp, under libsql-client, builds its TLS context at import;
libsql-experimental loads its roots when it connects). Not collected by pytest.

    python tls_client.py libsql-client sync|async URL TABLE    (token in SKYLITE_TLS_TOKEN)
    python tls_client.py sqlalchemy URL PREFIX                 (token in SKYLITE_TLS_TOKEN)

Prints one JSON line with what the client read back; a failure is a traceback and exit 1.
"""
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path


def libsql_client_scenario(mode: str, url: str, table: str) -> dict:
    import libsql_client

    token = os.environ["SKYLITE_TLS_TOKEN"]
    ws = url.startswith(("wss:", "libsql:"))

    async def run(client):
        await client.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, v TEXT)")
        await client.execute(f"INSERT INTO {table} (v) VALUES (?)", ["one"])
        rs = await client.batch([
            libsql_client.Statement(f"INSERT INTO {table} (v) VALUES (?)", ["two"]),
            f"INSERT INTO {table} (v) VALUES ('three')",
            f"SELECT count(*) FROM {table}",
        ])
        batch_count = rs[2].rows[0][0]
        if ws:  # interactive transactions exist only over WebSocket in this client
            tx = client.transaction()
            await tx.execute(f"INSERT INTO {table} (v) VALUES ('four')")
            await tx.commit()
            tx.close()
            tx = client.transaction()
            await tx.execute(f"INSERT INTO {table} (v) VALUES ('rolled back')")
            await tx.rollback()
            tx.close()
        rs = await client.execute(f"SELECT v FROM {table} ORDER BY id")
        return {"batch_count": batch_count, "values": [row[0] for row in rs.rows]}

    if mode == "sync":
        with libsql_client.create_client_sync(url, auth_token=token) as c:
            c.execute(f"CREATE TABLE IF NOT EXISTS {table} (id INTEGER PRIMARY KEY, v TEXT)")
            c.execute(f"INSERT INTO {table} (v) VALUES (?)", ["one"])
            rs = c.batch([
                libsql_client.Statement(f"INSERT INTO {table} (v) VALUES (?)", ["two"]),
                f"INSERT INTO {table} (v) VALUES ('three')",
                f"SELECT count(*) FROM {table}",
            ])
            batch_count = rs[2].rows[0][0]
            if ws:
                with c.transaction() as tx:
                    tx.execute(f"INSERT INTO {table} (v) VALUES ('four')")
                    tx.commit()
                with c.transaction() as tx:
                    tx.execute(f"INSERT INTO {table} (v) VALUES ('rolled back')")
                    tx.rollback()
            rs = c.execute(f"SELECT v FROM {table} ORDER BY id")
            return {"batch_count": batch_count, "values": [row[0] for row in rs.rows]}

    async def main():
        async with libsql_client.create_client(url, auth_token=token) as c:
            return await run(c)

    return asyncio.run(main())


def sqlalchemy_scenario(url: str, prefix: str) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from sqlalchemy import text

    from sqlalchemy_app.app import Bookshelf, engine_from_env

    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / ".env"
        env.write_text(f"TURSO_DATABASE_URL={url}\nTURSO_AUTH_TOKEN={os.environ['SKYLITE_TLS_TOKEN']}\n")
        engine = engine_from_env(env)
    try:
        shelf = Bookshelf(engine, prefix=prefix)
        shelf.create_schema()
        shelf.add_author("Le Guin", [{"title": "The Dispossessed", "year": 1974},
                                     {"title": "The Lathe of Heaven", "year": 1971}])
        with engine.connect() as conn:
            version = conn.execute(text("SELECT sqlite_version()")).scalar()
        return {
            "engine_url": engine.url.render_as_string(hide_password=True),
            "titles": shelf.titles_by("Le Guin"),
            "counts": list(shelf.counts()),
            "sqlite_version": version,
        }
    finally:
        engine.dispose()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "libsql-client":
        out = libsql_client_scenario(sys.argv[2], sys.argv[3], sys.argv[4])
    elif kind == "sqlalchemy":
        out = sqlalchemy_scenario(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown scenario {kind!r}")
    print(json.dumps(out))
