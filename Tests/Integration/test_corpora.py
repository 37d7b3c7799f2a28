"""11. Request-parsing corpora through the real proxy.

Vector files are read in place from the shared vectors directory (IAP_PROXY_VECTORS, default
<repo>/../shared/vectors); nothing is copied. Each payload gets a valid `x-goog-iap-jwt-assertion`
line right after its request line (and a Host line when its first HTTP/1.1 head has none), so an
accepted request really reaches the upstream. After the payload a sentinel request
(`GET /__sentinel`, with a token and `Connection: close`) is sent in the same write: when the
proxy frames the payload the way it was meant, the sentinel is answered and the connection
closes at once; if the proxy waits for more bytes (e.g. an announced body), the client half-closes
after ~0.7 s.

The upstream is a recording upstream (stdlib) that parses what it receives strictly: one framing
per request (Content-Length digits, or `Transfer-Encoding: chunked` exactly), valid field lines,
CRLF only. For every case we assert:
  * the recorder saw no ambiguous or malformed request (at most one of Content-Length /
    Transfer-Encoding, TE exactly `chunked`, nothing it cannot parse);
  * the requests parsed from the recorder's bytes are exactly the ones whose responses the
    proxy forwarded to the client (same count, same sequence numbers): no smuggled extra request;
  * a parser refusal (400/414/417/431/501/505) is the last response on the connection, and the
    proxy closed the connection after it;
  * the proxy closes the connection after the client half-closed (no hanging connection).

Coverage and speed: all llhttp `request` records (134), every smuggler gadget (1703) in both
its CL.TE and TE.CL probe forms (3406 probes), all PortSwigger permutations (75 TE in two probe
forms, 12 CL), all HTTP Garden payloads (77). Cases run in parallel over 4 proxy+recorder pairs
(one client connection per case, cases of one pair strictly sequential so the recorder's bytes
belong to the current case). If this ever gets too slow, set IAP_PROXY_CORPUS_SAMPLE=N to run
every N-th smuggler gadget (deterministic); the default runs the full set.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import ServeFactory
from helpers import ASSERTION, PARSER_STATUSES, VECTORS
from upstreams import PyUpstream, recorder

PAIRS = 4
HALF_CLOSE_AFTER = 0.7   # seconds without the proxy closing before the client half-closes
CASE_LIMIT = 6.0         # the proxy must have closed by then
QUIET = 0.15             # recorder idle time before a case's upstream bytes are taken as complete

pytestmark = pytest.mark.slow


def _load(relative: str):
    path = VECTORS / relative
    if not path.exists():
        pytest.skip(f"vector file {path} not found (set IAP_PROXY_VECTORS)")
    with open(path, "rb") as handle:
        return json.load(handle)


# -- building the cases ------------------------------------------------------------------------


def with_token(payload: bytes, token: str) -> bytes:
    """Inserts the assertion line right after the request line (the first non-empty line), and a
    Host line when that first head is HTTP/1.1 without one. Later pipelined requests in a payload
    are left as they are (without a token they are answered 401 if the proxy parses them as
    requests, which still shows how it framed the bytes)."""
    start = 0
    while payload.startswith(b"\r\n", start) or payload.startswith(b"\n", start):
        start += 2 if payload.startswith(b"\r\n", start) else 1  # empty lines before the request line
    newline = payload.find(b"\n", start)
    if newline < 0:
        return payload
    request_line = payload[start:newline].rstrip(b"\r")
    insert = f"{ASSERTION}: {token}\r\n".encode()
    head_end = min([i for i in (payload.find(b"\r\n\r\n", start), payload.find(b"\n\n", start)) if i >= 0]
                   or [len(payload)])
    head = payload[start:head_end]
    if request_line.endswith(b"HTTP/1.1") and not re.search(rb"(?im)^host[ \t]*:", head):
        insert += b"Host: corpus.test\r\n"
    return payload[:newline + 1] + insert + payload[newline + 1:]


def sentinel(token: str) -> bytes:
    return (f"GET /__sentinel HTTP/1.1\r\nHost: corpus.test\r\n{ASSERTION}: {token}\r\n"
            "Connection: close\r\n\r\n").encode()


def llhttp_cases():
    data = _load("llhttp/llhttp_cases.json")
    cases = []
    for i, record in enumerate(data["records"]):
        if record["type"] != "request":
            continue
        raw = base64.b64decode(record["input_base64"])
        cases.append((f"llhttp[{i}] {record['file']} / {record['title']}", raw))
    return cases


def smuggler_cases():
    data = _load("smuggler/te_mutations.json")
    step = int(os.environ.get("IAP_PROXY_CORPUS_SAMPLE", "1"))
    cases = []
    for i, gadget in enumerate(data["gadgets"]):
        if i % step:
            continue
        name = gadget["names"][0]
        cases.append((f"smuggler[{i}] {name} CL.TE", base64.b64decode(gadget["probe_clte_base64"])))
        cases.append((f"smuggler[{i}] {name} TE.CL", base64.b64decode(gadget["probe_tecl_base64"])))
    return cases


def portswigger_cases():
    data = _load("portswigger-http-request-smuggler/permutations.json")
    cases = []
    for perm in data["te_permutations"]:
        block = base64.b64decode(perm["header_block_base64"])
        line = b"POST / HTTP/1.0" if perm["name"] == "http1.0" else b"POST / HTTP/1.1"
        prefix = line + b"\r\n"
        if perm["name"] == "badwrap":
            prefix += b" Transfer-Encoding: chunked\r\n"
        for form, length, body in (("CL.TE", 4, b"1\r\nZ\r\n0\r\n\r\n"), ("TE.CL", 6, b"0\r\n\r\nX")):
            raw = prefix + b"Host: example.com\r\n" + block + b"\r\nContent-Length: %d\r\n\r\n" % length + body
            cases.append((f"portswigger {perm['name']} {form}", raw))
    for perm in data["cl_permutations"]:
        block = base64.b64decode(perm["header_block_base64"])
        raw = b"POST / HTTP/1.1\r\nHost: example.com\r\n" + block + b"\r\n\r\nAAAAA"
        cases.append((f"portswigger {perm['name']}", raw))
    return cases


def garden_cases():
    data = _load("http-garden/trophies_payloads.json")
    cases = []
    for bug in data["bugs"]:
        for j, payload in enumerate(bug["payloads"]):
            cases.append((f"http-garden {bug['section']} #{bug['number']}.{j}", base64.b64decode(payload["base64"])))
    return cases


# -- running one case ----------------------------------------------------------------------------


def parse_responses(data: bytes):
    """Splits the client's received bytes into responses: [(status, headers dict-ish list)];
    returns (responses, error or None)."""
    responses = []
    rest = data
    while rest:
        end = rest.find(b"\r\n\r\n")
        if end < 0:
            return responses, f"incomplete response head {rest[:120]!r}"
        lines = rest[:end].split(b"\r\n")
        match = re.fullmatch(rb"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
        if not match:
            return responses, f"bad status line {lines[0][:120]!r}"
        status = int(match.group(1))
        headers = []
        for line in lines[1:]:
            if b":" not in line:
                return responses, f"bad response field {line[:120]!r}"
            name, value = line.split(b":", 1)
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        rest = rest[end + 4:]
        if 100 <= status < 200:
            continue
        fields = dict(headers)
        if "x-recorder-head" in fields:
            pass  # the recorder's answer to a HEAD request: no body
        elif "transfer-encoding" in fields:
            body = b""
            while True:
                nl = rest.find(b"\r\n")
                if nl < 0:
                    return responses, "incomplete chunked response"
                size = int(rest[:nl].split(b";")[0], 16)
                rest = rest[nl + 2:]
                if size == 0:
                    trailer_end = rest.find(b"\r\n")
                    rest = rest[trailer_end + 2:]
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            length = int(fields.get("content-length", "0"))
            if len(rest) < length:
                return responses, "truncated response body"
            rest = rest[length:]
        responses.append((status, headers))
    return responses, None


class Pair:
    def __init__(self, proxy, up: PyUpstream):
        self.proxy = proxy
        self.up = up


def quiesce(up: PyUpstream, limit: float = 3.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if time.monotonic() - up.last_activity >= QUIET:
            return
        time.sleep(0.02)


def run_case(pair: Pair, name: str, raw: bytes, token: str) -> dict:
    up = pair.up
    quiesce(up)
    with up.lock:
        req_before, err_before = len(up.requests), len(up.errors)
    payload = with_token(raw, token) + sentinel(token)
    sock = socket.create_connection(("127.0.0.1", pair.proxy.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(0.05)
    received = b""
    closed = reset = half_closed = False
    started = time.monotonic()
    try:
        sock.sendall(payload)
    except OSError:
        pass  # the proxy may refuse and close while we are still writing
    while True:
        try:
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            received += chunk
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = reset = True
            break
        elapsed = time.monotonic() - started
        if not half_closed and elapsed > HALF_CLOSE_AFTER:
            half_closed = True
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if elapsed > CASE_LIMIT:
            break
    sock.close()
    quiesce(up)
    with up.lock:
        recorded = up.requests[req_before:]
        errors = up.errors[err_before:]
        first_number = req_before + 1

    problems = []
    responses, parse_error = parse_responses(received)
    if parse_error and not reset:
        problems.append(f"client could not parse the proxy's responses: {parse_error}")
    if not closed:
        problems.append(f"proxy did not close the connection within {CASE_LIMIT}s (client half-closed)")
    for error in errors:
        problems.append(f"upstream received an ambiguous/malformed request: {error}")
    for req in recorded:
        if req["te"] and req["cl"]:
            problems.append(f"upstream request with both TE {req['te']} and CL {req['cl']}")
        if req["te"] and req["te"] != ["chunked"]:
            problems.append(f"upstream request with Transfer-Encoding {req['te']}")
    forwarded = [int(dict(h).get("x-recorder")) for s, h in responses if "x-recorder" in dict(h)]
    expected = list(range(first_number, first_number + len(recorded)))
    if not reset and forwarded != expected:
        problems.append(f"upstream parsed {len(recorded)} request(s) {[r['method'] + ' ' + r['target'] for r in recorded]} "
                        f"but the proxy forwarded responses for #{forwarded} (expected #{expected})")
    if reset and len(forwarded) > len(recorded):
        problems.append(f"more forwarded responses {forwarded} than upstream requests {expected}")
    statuses = [s for s, _ in responses]
    for index, status in enumerate(statuses):
        if status in PARSER_STATUSES:
            if index != len(statuses) - 1:
                problems.append(f"response {index} was {status} but more responses followed: {statuses}")
    return {
        "name": name, "raw": raw, "statuses": statuses, "recorded": len(recorded), "problems": problems,
        "closed": closed, "reset": reset, "half_closed": half_closed,
        "sentinel": any(r["target"] == "/__sentinel" for r in recorded),
        "elapsed": time.monotonic() - started,
    }


@pytest.fixture(scope="module")
def pairs(env):
    factory = ServeFactory(env)
    ups = []
    made = []
    try:
        for i in range(PAIRS):
            up = PyUpstream(recorder(), f"recorder-{i}")
            ups.append(up)
            proxy = factory("--head-timeout", "1s", "--client-timeout", "1s", "--upstream-timeout", "2s",
                            "--idle-timeout", "2s", upstream=up.url, workers=1, admin=False)
            made.append(Pair(proxy, up))
        yield made
    finally:
        factory.stop_all()
        for up in ups:
            up.stop()


def run_corpus(pairs, token, cases):
    free: queue.Queue = queue.Queue()
    for pair in pairs:
        free.put(pair)

    def task(case):
        pair = free.get()
        try:
            return run_case(pair, case[0], case[1], token)
        finally:
            free.put(pair)

    with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
        results = list(pool.map(task, cases))
    failed = [r for r in results if r["problems"]]
    summary = {
        "cases": len(results),
        "refused_by_parser": sum(1 for r in results if any(s in PARSER_STATUSES for s in r["statuses"])),
        "forwarded_something": sum(1 for r in results if r["recorded"]),
        "sentinel_forwarded": sum(1 for r in results if r["sentinel"]),
        "needed_half_close": sum(1 for r in results if r["half_closed"]),
        "reset": sum(1 for r in results if r["reset"]),
        "failed": len(failed),
        "seconds_max": round(max((r["elapsed"] for r in results), default=0), 2),
    }
    print("corpus summary:", json.dumps(summary))
    if failed:
        lines = [f"{len(failed)} of {len(results)} cases broke the framing invariants ({json.dumps(summary)}):"]
        for r in failed[:15]:
            lines.append(f"- {r['name']}\n    sent (before token insertion): {r['raw'][:300]!r}\n"
                         f"    statuses: {r['statuses']}  upstream requests: {r['recorded']}\n"
                         + "".join(f"    * {p}\n" for p in r["problems"]))
        pytest.fail("\n".join(lines), pytrace=False)
    return results


def test_llhttp_request_corpus(pairs, token):
    cases = llhttp_cases()
    assert len(cases) == 134
    run_corpus(pairs, token, cases)


def test_smuggler_te_gadgets(pairs, token):
    cases = smuggler_cases()
    assert cases
    run_corpus(pairs, token, cases)


def test_portswigger_permutations(pairs, token):
    cases = portswigger_cases()
    assert len(cases) == 75 * 2 + 12
    run_corpus(pairs, token, cases)


def test_http_garden_payloads(pairs, token):
    cases = garden_cases()
    assert len(cases) == 77
    run_corpus(pairs, token, cases)
