"""After fork (gunicorn preload_app): the child opens its own connections and they work; a
connection inherited from the parent refuses to run instead of sharing the parent's sockets."""
import os

import pytest

import skylite


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_child_after_fork(target):
    parent = skylite.connect(target[1], auth_token=target[2])
    assert parent.execute("SELECT 1").fetchone() == (1,)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            try:
                parent.execute("SELECT 1")
                code = 2
            except skylite.Error:
                child = skylite.connect(target[1], auth_token=target[2])
                if child.execute("SELECT 40 + 2").fetchone() == (42,):
                    code = 0
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    result = os.read(r, 1)
    os.waitpid(pid, 0)
    assert result == bytes([0])
    assert parent.execute("SELECT 2").fetchone() == (2,)
