"""Shared pytest fixtures: the URL of the running skylite server (http:// and ws://), unique
names, and a factory for a private server started with special flags (binary from SKYLITE_BIN).
Auth is on everywhere: tokens for the shared server come from tokens.py; a private server
mints its own on its data dir (PrivateServer.mint)."""
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

import tokens


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


@dataclass
class PrivateServer:
    url: str
    data_dir: Path

    def mint(self, *flags: str) -> str:
        """A token from this server's own key pair (`skylite token create --data-dir ...`)."""
        return tokens.mint(*flags, data_dir=self.data_dir)


@pytest.fixture
def private_server(tmp_path):
    """Starts `skylite serve` (auth on) with extra flags on a free port; returns a
    PrivateServer (its http URL and data dir, to mint tokens on)."""
    procs = []

    def start(*flags: str) -> PrivateServer:
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
                        return PrivateServer(url, data)
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
