"""Shared pytest fixtures: the URL of the running skylite server (http:// and ws://), unique
names, and a factory for a private server started with special flags (binary from SKYLITE_BIN)."""
import os
import socket
import subprocess
import time
import urllib.request
import uuid

import pytest


@pytest.fixture(scope="session")
def server_url() -> str:
    url = os.environ.get("SKYLITE_TEST_URL")
    if not url:
        pytest.fail("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh")
    return url.rstrip("/")


@pytest.fixture(scope="session")
def ws_url(server_url) -> str:
    """The same server as Hrana over WebSocket (GET / upgrades)."""
    return "ws" + server_url[len("http"):]


@pytest.fixture
def name() -> str:
    """A table/index name prefix unique to one test."""
    return "t_" + uuid.uuid4().hex[:12]


@pytest.fixture
def private_server(tmp_path):
    """Starts `skylite serve` with extra flags on a free port; returns its http URL."""
    procs = []

    def start(*flags: str) -> str:
        binary = os.environ.get("SKYLITE_BIN")
        if not binary:
            pytest.fail("SKYLITE_BIN is not set; run the suite through scripts/test.sh")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        data = tmp_path / f"data-{port}"
        log = open(tmp_path / f"server-{port}.log", "w")
        procs.append(subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data), *flags],
            stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return url
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"private skylite server on {url} did not become healthy")

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
