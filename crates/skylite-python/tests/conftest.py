"""Fixtures for the skylite Python driver's suite. Every scenario runs against two targets:
the suite's skylite server (SKYLITE_TEST_URL with SKYLITE_TEST_TOKEN, as scripts/test.sh
starts it; database `default`) and a local file on the same engine in this process."""
import os
import uuid

import pytest


def _server():
    url = os.environ.get("SKYLITE_TEST_URL")
    if not url:
        pytest.skip("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh")
    return url.rstrip("/"), os.environ.get("SKYLITE_TEST_TOKEN")


@pytest.fixture
def server():
    """(url, read-write token) of the suite's server."""
    return _server()


@pytest.fixture
def ro_token():
    _server()
    token = os.environ.get("SKYLITE_TEST_RO_TOKEN")
    if not token:
        pytest.skip("SKYLITE_TEST_RO_TOKEN is not set")
    return token


@pytest.fixture(params=["remote", "file"])
def target(request, tmp_path):
    """(kind, url, token): the server, or a local file."""
    if request.param == "remote":
        url, token = _server()
        return "remote", url, token
    return "file", f"file:{tmp_path / 'local.db'}", None


@pytest.fixture
def connect(target):
    """Opens connections to the target; closes them at the end."""
    import skylite

    opened = []

    def open_(**kwargs):
        con = skylite.connect(target[1], auth_token=target[2], **kwargs)
        opened.append(con)
        return con

    yield open_
    for con in opened:
        try:
            con.close()
        except Exception:
            pass


@pytest.fixture
def name():
    """A table name unique to one test."""
    return "t_" + uuid.uuid4().hex[:12]
