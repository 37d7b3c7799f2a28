"""Every worker's listener is on the port the `serving` event reports. With `--listen HOST:0` (how
this suite starts every proxy) a worker that binds port 0 on its own gets another ephemeral port:
nothing connects there, so every request lands on worker 0 and the suite's `--workers 2` proxies
are single-worker in practice (found by the policy tests: the per-worker audience hint)."""

from __future__ import annotations

import os

import pytest


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state on sockets the process holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as handle:
                next(handle)
                for row in handle:
                    fields = row.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue
    return ports


def test_port_zero_gives_every_worker_the_same_port(serve):
    proxy = serve(workers=2, admin=False)
    ports = _listening_ports(proxy.pid)
    assert ports == {proxy.port}, f"listening on {sorted(ports)}, reported {proxy.port}"


def test_fixed_port_gives_every_worker_the_same_port(serve):
    from helpers import free_port
    port = free_port()
    proxy = serve("--listen", f"127.0.0.1:{port}", workers=2, admin=False)
    assert proxy.port == port
    assert _listening_ports(proxy.pid) == {port}
