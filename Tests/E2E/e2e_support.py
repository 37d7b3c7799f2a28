"""Processes, tokens and clients for the real-apps end-to-end suite (stdlib, requests, websockets).

Every process is started in its own session with its output in files under the test's temp dir,
registered, and stopped at the end together with every descendant it spawned (JupyterHub's
proxy, single-user servers and kernels run in sessions of their own, so they are found through
/proc and killed by pid, each checked against its start time first).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BIN = str(Path(os.environ.get("IAP_PROXY_BIN") or REPO / ".build" / "debug" / "iap-proxy").absolute())
MLFLOW_VENV = Path(os.environ.get("E2E_MLFLOW_VENV") or REPO / ".venv-e2e-mlflow").absolute()
JHUB_VENV = Path(os.environ.get("E2E_JHUB_VENV") or REPO / ".venv-e2e-jhub").absolute()

AUDIENCE = "/projects/123456789/global/backendServices/424242424242"
KID = "e2e-key-1"
ASSERTION = "x-goog-iap-jwt-assertion"

_live: list["Proc"] = []
_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup() -> None:
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the test runner


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int) -> tuple[int, int] | None:
    """(ppid, start time) of a live process, from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[19])


def _descendants(root: int) -> list[tuple[int, int]]:
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))):
            children.setdefault(st[0], []).append((int(entry), st[1]))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


class Proc:
    """A subprocess with stdout and stderr in files (`<name>.out`, `<name>.err`, or one `<name>.log`)."""

    def __init__(self, args, name: str, logdir: Path, env: dict | None = None, cwd=None, split_output: bool = False):
        self.name = name
        self.args = [str(a) for a in args]
        if split_output:
            self.out_path, self.err_path = logdir / f"{name}.out", logdir / f"{name}.err"
        else:
            self.out_path = self.err_path = logdir / f"{name}.log"
        out = open(self.out_path, "ab")
        err = out if not split_output else open(self.err_path, "ab")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_PROXY_")}
        full_env.update(env or {})
        self.popen = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env,
                                      cwd=cwd, start_new_session=True, preexec_fn=_child_setup)
        out.close()
        if err is not out:
            err.close()
        self.pid = self.popen.pid
        _live.append(self)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self, which: str = "out") -> str:
        path = self.out_path if which == "out" else self.err_path
        try:
            return path.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, n: int = 40) -> str:
        paths = dict.fromkeys([self.out_path, self.err_path])
        parts = []
        for path in paths:
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            parts.append(f"--- {self.name} ({path.name}, last {n} of {len(lines)} lines) ---\n" + "\n".join(lines[-n:]))
        return "\n".join(parts)

    def terminate(self) -> None:
        """SIGTERM: the app stops its own children (remembered first, for stop())."""
        self._family = _descendants(self.pid) if self.alive() else []
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)

    def stop(self, grace: float = 10) -> None:
        """terminate(), then SIGKILL to the process and whatever it left behind after `grace` s."""
        if not hasattr(self, "_family"):
            self.terminate()
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._family += _descendants(self.pid)
            self.popen.kill()
            self.popen.wait(timeout=10)
        for pid, started in self._family:
            st = _stat(pid)
            if st and st[1] == started:  # the same process, not a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self in _live:
            _live.remove(self)


def stop_all(grace: float = 10) -> None:
    """Stops every live process, all at once (each app's clean shutdown takes seconds)."""
    procs = list(_live)
    for proc in procs:
        try:
            proc.terminate()
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.stop(grace=max(0.1, deadline - time.monotonic()))


def live_tails(n: int = 40) -> list[tuple[str, str]]:
    return [(f"{p.name} pid {p.pid} ({'running' if p.alive() else f'exited {p.popen.returncode}'})", p.tail(n))
            for p in list(_live)]


def wait_until(predicate, timeout: float, what: str, procs: tuple = ()):
    deadline = time.monotonic() + timeout
    while True:
        for proc in procs:
            if not proc.alive():
                raise AssertionError(f"{proc.name} exited with {proc.popen.returncode} while waiting for {what}\n"
                                     + proc.tail(60))
        try:
            result = predicate()
        except (requests.RequestException, OSError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n"
                                 + "\n".join(p.tail(60) for p in procs))
        time.sleep(0.2)


def run_bin(*args) -> str:
    result = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"iap-proxy {args[0]} failed: {result.stderr}"
    return result.stdout


class Keys:
    """A local ES256 key set (`iap-proxy keygen`) and tokens minted with it (`iap-proxy mint`)."""

    def __init__(self, root: Path):
        self.dir = root / "keys"
        run_bin("keygen", "--out", self.dir, "--kid", KID)
        self.jwks = self.dir / "jwks.json"
        self._cache: dict[str, tuple[str, float]] = {}

    def token(self, email: str) -> str:
        hit = self._cache.get(email)
        if hit and time.monotonic() - hit[1] < 240:  # tokens live 600 s
            return hit[0]
        token = run_bin("mint", "--key", self.dir / "private.pem", "--kid", KID, "--audience", AUDIENCE,
                        "--email", email, "--hd", email.split("@")[1]).strip()
        self._cache[email] = (token, time.monotonic())
        return token


class Proxy(Proc):
    """`iap-proxy serve` on a port it picks itself (read back from its `serving` event)."""

    def __init__(self, name: str, logdir: Path, args: list):
        super().__init__([BIN, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", *args], name, logdir,
                         split_output=True)
        event = wait_until(lambda: next((e for e in self._json("err") if e.get("event") == "serving"), None), 20,
                           f"{name} serving event", (self,))
        self.port = int(event["listen"].rsplit(":", 1)[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _json(self, which: str) -> list[dict]:
        out = []
        for line in self.text(which).splitlines():
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out

    def access_log(self) -> list[dict]:
        return self._json("out")

    def access_lines(self, predicate, timeout: float = 5) -> list[dict]:
        """Access-log lines matching predicate, waiting briefly for at least one (the line is written
        when the response ends)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.access_log() if predicate(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def session_for(token: str | None) -> requests.Session:
    s = requests.Session()
    if token:
        s.headers[ASSERTION] = token
    return s


def probe() -> str:
    return "probe-" + uuid.uuid4().hex[:16]


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- Jupyter kernel messaging over the /api/kernels/<id>/channels WebSocket (JSON, protocol 5.3) --


def execute(ws, code: str, timeout: float = 60) -> dict:
    """Sends an execute_request; returns {'status', 'stdout', 'result'} of its replies."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "username": "e2e", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                   "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }))
    out = {"status": None, "stdout": "", "result": None}
    deadline = time.monotonic() + timeout
    idle = False
    while out["status"] is None or not idle:
        msg = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content.get("name") == "stdout":
            out["stdout"] += content["text"]
        elif kind == "execute_result":
            out["result"] = content["data"].get("text/plain")
        elif kind == "error":
            out["error"] = f"{content.get('ename')}: {content.get('evalue')}"
        elif kind == "execute_reply":
            out["status"] = content["status"]
        elif kind == "status" and content.get("execution_state") == "idle":
            idle = True
    return out
