"""nginx from Debian's package, serving through the repository's own deploy/nginx.conf: only the
upstream address and the listening port differ from what docker-compose.yml mounts."""

import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.deploy import ROOT
from tests.support.processes import free_port

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
UPSTREAM = "server api:8000;"
LISTEN = "listen 80;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(found).exists(), "nginx is missing: `make test` installs Debian's nginx package"
    return found


def render_config(upstream: str, listen: str) -> str:
    text = NGINX_CONF.read_text()
    # Exactly one of each: if the file changes shape, this test must be told, not silently skip it.
    assert text.count(UPSTREAM) == 1 and text.count(LISTEN) == 1, "deploy/nginx.conf changed shape"
    return text.replace(UPSTREAM, f"server {upstream};").replace(LISTEN, f"listen {listen};")


def start_nginx(upstream_port: int, directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx on a free port in front of 127.0.0.1:`upstream_port`; returns (process, port)."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(render_config(f"127.0.0.1:{upstream_port}", f"127.0.0.1:{port}"))
    main_context = f"pid {directory}/nginx.pid; error_log {directory}/error.log; daemon off;"
    command = [nginx_binary(), "-p", str(directory), "-c", str(config), "-g", main_context]
    with (directory / "access.log").open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        assert process.poll() is None, (directory / "access.log").read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start listening"
            time.sleep(0.05)
