"""Many databases with the real Python clients: a database created through the admin API
(POST /v1/admin/databases) is reached by `libsql-client` (http:// and ws://) and by the
SQLAlchemy app (sqlalchemy-libsql -> libsql-experimental), and its data stays apart from the
default database.

How each client turns a URL with a path into request URLs:
- libsql-client over http: urljoin(url, "v1/execute"), so a path URL needs its trailing slash
  (http://host/db/app/); without it the name is dropped and the server answers 404 with a hint.
- libsql-client over ws: connects to the URL as given (ws://host/db/app).
- libsql-experimental (under SQLAlchemy): appends "/v3/pipeline" to the URL, so
  sqlite+libsql://host:port/db/app?secure=false works as is.
None of them can add custom headers (no x-namespace). Subdomains (<name>.localhost) need DNS:
for libsql-client this file points *.localhost at the server inside the test process.
Auth: the admin API takes the admin token; each created database gets its own token minted with
`skylite token create --db NAME` (as a user would), and `default` gets the read-write token.
"""
import json
import socket
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

import libsql_client
import pytest
from sqlalchemy import text

from sqlalchemy_app.app import Bookshelf, engine_from_env
from tokens import admin_token, mint, token


def admin(server_url, method, path, body=None, auth=True):
    headers = {"content-type": "application/json"}
    if auth:
        headers["authorization"] = f"Bearer {admin_token()}"
    req = urllib.request.Request(
        server_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def db(server_url):
    """A fresh database, created through the admin API, with a `notes` table."""
    name = "py-" + uuid.uuid4().hex[:10]
    status, body = admin(server_url, "POST", "/v1/admin/databases", {"name": name})
    assert status == 201, body
    assert body == {"name": name, "created": True}
    with libsql_client.create_client_sync(f"{server_url}/db/{name}/", auth_token=db_token(name)) as c:
        c.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, via TEXT NOT NULL)")
    return name


_db_tokens = {}


def db_token(name):
    """A read-write token for database `name` only (minted once per name)."""
    if name not in _db_tokens:
        _db_tokens[name] = mint("--db", name)
    return _db_tokens[name]


@pytest.fixture
def localhost_dns(server_url, monkeypatch):
    """Resolves *.localhost to the test server's address, as a wildcard DNS record would."""
    host = urlsplit(server_url).hostname
    real = socket.getaddrinfo

    def fake(name, *args, **kwargs):
        if isinstance(name, str) and name.endswith(".localhost"):
            name = host
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def urls(server_url, ws_url, name):
    port = urlsplit(server_url).port
    return {
        "http-db": f"{server_url}/db/{name}/",
        "http-dev": f"{server_url}/dev/{name}/",
        "http-subdomain": f"http://{name}.localhost:{port}",
        "ws-db": f"{ws_url}/db/{name}",
        "ws-subdomain": f"ws://{name}.localhost:{port}",
    }


@pytest.mark.parametrize("via", ["http-db", "http-dev", "http-subdomain", "ws-db", "ws-subdomain"])
def test_libsql_client_reaches_the_named_database(server_url, ws_url, db, via, localhost_dns):
    url = urls(server_url, ws_url, db)[via]
    with libsql_client.create_client_sync(url, auth_token=db_token(db)) as c:
        c.execute("INSERT INTO notes (via) VALUES (?)", [via])
        rs = c.execute("SELECT count(*) FROM notes WHERE via = ?", [via])
        assert rs.rows[0][0] == 1
        rs = c.batch(["INSERT INTO notes (via) VALUES ('batch')", "SELECT count(*) FROM notes"])
        assert rs[1].rows[0][0] >= 2


def test_default_database_sees_none_of_it(server_url, ws_url, db):
    for url in (server_url, ws_url):
        with libsql_client.create_client_sync(url, auth_token=token()) as c:
            rs = c.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'notes'")
            assert rs.rows[0][0] == 0, url


def test_unknown_database_is_an_error_not_a_new_database(server_url):
    with libsql_client.create_client_sync(f"{server_url}/db/no-such-db/", auth_token=admin_token()) as c:
        with pytest.raises(libsql_client.LibsqlError) as e:
            c.execute("SELECT 1")
        assert "does not exist" in str(e.value)
    status, body = admin(server_url, "GET", "/v1/admin/databases/no-such-db")
    assert status == 404 and body["code"] == "DATABASE_NOT_FOUND"


def test_path_url_without_trailing_slash_gets_a_hint(server_url, db):
    with libsql_client.create_client_sync(f"{server_url}/db/{db}", auth_token=db_token(db)) as c:
        with pytest.raises(libsql_client.LibsqlError) as e:
            c.execute("SELECT 1")
        assert "trailing slash" in str(e.value)


@pytest.mark.parametrize("prefix", ["db", "dev"])
def test_sqlalchemy_app_on_a_named_database(server_url, tmp_path, monkeypatch, prefix):
    name = f"sa-{prefix}-" + uuid.uuid4().hex[:8]
    status, body = admin(server_url, "POST", "/v1/admin/databases", {"name": name})
    assert status == 201, body
    monkeypatch.delenv("TURSO_DATABASE_URL", raising=False)
    monkeypatch.delenv("TURSO_AUTH_TOKEN", raising=False)
    env = tmp_path / ".env"
    env.write_text(f"TURSO_DATABASE_URL={server_url}/{prefix}/{name}\nTURSO_AUTH_TOKEN={mint('--db', name)}\n")
    engine = engine_from_env(env)
    try:
        shelf = Bookshelf(engine, prefix="")
        shelf.create_schema()
        shelf.add_author("Ursula", [{"title": "The Dispossessed"}])
        assert shelf.titles_by("Ursula") == ["The Dispossessed"]
        assert shelf.counts() == (1, 1)
        with engine.connect() as conn:
            tables = conn.execute(
                text("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            ).scalars().all()
        assert "authors" in tables and "books" in tables
    finally:
        engine.dispose()
    # The admin API sees the app's tables; the default database does not have them.
    status, info = admin(server_url, "GET", f"/v1/admin/databases/{name}")
    assert status == 200, info
    assert info["tables"] >= 2 and info["health"]["ok"] is True
    with libsql_client.create_client_sync(server_url, auth_token=token()) as c:
        rs = c.execute("SELECT count(*) FROM sqlite_schema WHERE name = 'authors'")
        assert rs.rows[0][0] == 0
    status, body = admin(server_url, "DELETE", f"/v1/admin/databases/{name}")
    assert status == 200, body


def test_admin_api_needs_the_admin_token(server_url, db):
    status, body = admin(server_url, "GET", "/v1/admin/databases", auth=False)
    assert status == 401, body
    req = urllib.request.Request(server_url + "/v1/admin/databases",
                                 headers={"authorization": f"Bearer {token()}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 403


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_a_database_token_opens_only_its_database(server_url, ws_url, db, transport):
    base = server_url if transport == "http" else ws_url
    db_url = f"{server_url}/db/{db}/" if transport == "http" else f"{ws_url}/db/{db}"
    # Over http a refusal is an HTTP 403 (the client shows the status, as against sqld); over ws
    # it is a hello_error with our code and message.
    def assert_forbidden(err, name):
        if transport == "http":
            assert err.code == "SERVER_ERROR" and "403" in str(err), err
        else:
            assert err.code == "AUTH_DATABASE_FORBIDDEN" and name in str(err), err
    with libsql_client.create_client_sync(db_url, auth_token=token()) as c:
        with pytest.raises(libsql_client.LibsqlError) as e:
            c.execute("SELECT count(*) FROM notes")
        assert_forbidden(e.value, db)
    with libsql_client.create_client_sync(base, auth_token=db_token(db)) as c:
        with pytest.raises(libsql_client.LibsqlError) as e:
            c.execute("SELECT 1")
        assert_forbidden(e.value, "default")
