"""The demo app (examples/python/fastapi_app: FastAPI + async SQLAlchemy ORM + Alembic +
.env) on a database of its own, created with the admin API: `alembic upgrade head`, then
uvicorn serving it over real HTTP, many requests at once, then a downgrade."""
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

APP_DIR = Path(__file__).resolve().parents[3] / "examples" / "python" / "fastapi_app"


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


@pytest.fixture
def app_dir(server, tmp_path):
    url, _ = server
    admin = os.environ.get("SKYLITE_TEST_ADMIN_TOKEN")
    if not admin:
        pytest.skip("SKYLITE_TEST_ADMIN_TOKEN is not set")
    name = "fastapi-" + uuid.uuid4().hex[:8]
    status, body = http("POST", f"{url}/v1/admin/databases", {"name": name}, admin)
    assert status == 201, body
    work = tmp_path / "app"
    shutil.copytree(APP_DIR, work, ignore=shutil.ignore_patterns("__pycache__", ".env"))
    # The admin token opens every database; a real deployment mints one for this database.
    (work / ".env").write_text(f"SKYLITE_URL={url}/db/{name}\nSKYLITE_AUTH_TOKEN={admin}\n")
    return work


def run(cwd, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYLITE_")}
    out = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_demo_app_over_http(app_dir):
    run(app_dir, "alembic", "upgrade", "head")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYLITE_")}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app:app", "--port", str(port),
                             "--log-level", "warning"], cwd=app_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                if http("GET", f"{base}/notes")[0] == 200:
                    break
            except OSError:
                pass
            assert time.time() < deadline and proc.poll() is None, proc.stdout.read()
            time.sleep(0.1)
        status, note = http("POST", f"{base}/notes", {"title": "first"})
        assert status == 201 and note == {"id": 1, "title": "first", "done": False}
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda i: http("POST", f"{base}/notes", {"title": f"n{i}"}),
                                    range(40)))
        assert all(s == 201 for s, _ in results)
        assert http("POST", f"{base}/notes/1/done")[1]["done"] is True
        status, notes = http("GET", f"{base}/notes")
        assert status == 200 and len(notes) == 41 and notes[0]["done"] is True
        assert http("GET", f"{base}/notes/999")[0] == 404
    finally:
        proc.terminate()
        proc.wait(10)
    out = run(app_dir, "alembic", "downgrade", "0001")
    assert "0002 -> 0001" in out
