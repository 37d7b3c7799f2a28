#!/usr/bin/env python3
"""Helpers for the iap-proxy benchmark scripts (bench/*.sh).

Subcommands:
  freeport N                 print N distinct free TCP ports on 127.0.0.1
  waitport PORT [TIMEOUT]    wait until 127.0.0.1:PORT accepts connections
  mint ...                   mint ES256 IAP-style tokens (valid or deliberately bad) into a file
  report CSV OUT.md          medians and paired ratios from run.sh's per-run CSV
  hold ...                   hold N idle keep-alive connections and report RSS per connection
  sink PORT                  an HTTP/1.1 origin that discards request bodies and reports their size

Only the standard library, except `mint`, which needs `cryptography`.
"""

import argparse
import base64
import csv
import json
import os
import resource
import select
import socket
import statistics
import sys
import threading
import time


def fail(msg):
    print(f"benchtool: {msg}", file=sys.stderr)
    sys.exit(1)


# --------------------------------------------------------------------------- ports

def cmd_freeport(args):
    # Bind all of them at once so the kernel hands out distinct ports, then release them.
    socks = []
    for _ in range(args.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_waitport(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", args.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    fail(f"nothing listening on 127.0.0.1:{args.port} after {args.timeout}s")


# --------------------------------------------------------------------------- tokens

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _load_key(path):
    from cryptography.hazmat.primitives import serialization
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def _sign(key, signing_input):
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS ES256 form: r || s


def _claims(i, a, now):
    user = f"user{i}"
    claims = {
        "aud": a.audience,
        "email": f"{user}@{a.hd}",
        "exp": now + a.ttl,
        "iat": now,
        "iss": "https://cloud.google.com/iap",
        "sub": f"accounts.google.com:{10**20 + i}",  # distinct payload per token, not just a distinct signature
        "hd": a.hd,
    }
    v = a.variant
    if v == "expired":
        claims["iat"], claims["exp"] = now - 2 * a.ttl, now - a.ttl
    elif v == "wrongaud":
        claims["aud"] = "/projects/111111111/global/backendServices/222222222"
    elif v == "wrongiss":
        claims["iss"] = "https://accounts.google.com"
    elif v == "wronghd":
        claims["hd"], claims["email"] = "evil.example", f"{user}@evil.example"
    return claims


def _mint_range(a, start, stop, now):
    from cryptography.hazmat.primitives.asymmetric import ec
    key = ec.generate_private_key(ec.SECP256R1()) if a.variant == "otherkey" else _load_key(a.key)
    header = {"alg": "ES256", "typ": "JWT", "kid": a.kid}
    if a.variant == "badalg":
        header["alg"] = "HS256"
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    out = []
    for i in range(start, stop):
        claims = _claims(i, a, now)
        p = b64url(json.dumps(claims, separators=(",", ":")).encode())
        sig = _sign(key, h + b"." + p)
        if a.variant == "tampered":
            # Well-formed token, good signature of *other* claims: only signature checking rejects it.
            claims["email"] = f"mallory@{a.hd}"
            p = b64url(json.dumps(claims, separators=(",", ":")).encode())
        out.append(b".".join([h, p, b64url(sig)]).decode())
    return out


def _mint_worker(packed):
    a, start, stop, now = packed
    return _mint_range(a, start, stop, now)


def cmd_mint(args):
    try:
        import cryptography  # noqa: F401
    except ImportError:
        fail("mint needs the Python package 'cryptography' (pip install cryptography, or apt python3-cryptography)")
    now = int(time.time()) if args.now is None else args.now
    procs = max(1, min(args.procs, args.count // 2000 or 1))
    step = -(-args.count // procs)
    end = args.offset + args.count
    parts = [(args, i, min(i + step, end), now) for i in range(args.offset, end, step)]
    if procs > 1:
        import multiprocessing
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            chunks = pool.map(_mint_worker, parts)
    else:
        chunks = [_mint_worker(p) for p in parts]
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        for chunk in chunks:
            f.write("\n".join(chunk))
            f.write("\n")
    os.replace(tmp, args.out)


# --------------------------------------------------------------------------- report

def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _fmt(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


# (label, numerator scenario, denominator scenario, metric, target text, target check)
RATIOS = [
    ("iap / nginx (req/s)", "iap", "nginx", "rps", "≥ 0.8", lambda r: r >= 0.8),
    ("iap / haproxy-jwt (req/s)", "iap", "haproxy-jwt", "rps", "≥ 3", lambda r: r >= 3),
    ("iap-fresh / haproxy-jwt-fresh (req/s)", "iap-fresh", "haproxy-jwt-fresh", "rps", "≥ 1.2", lambda r: r >= 1.2),
    ("iap-fresh / haproxy-jwt (req/s)", "iap-fresh", "haproxy-jwt", "rps", "", None),
    ("iap p99 / nginx p99", "iap", "nginx", "p99_us", "≤ 1.5", lambda r: r <= 1.5),
    ("iap-policy / iap (req/s)", "iap-policy", "iap", "rps", "≥ 0.95", lambda r: r >= 0.95),
    ("nginx / direct (req/s)", "nginx", "direct", "rps", "", None),
    ("haproxy / nginx (req/s)", "haproxy", "nginx", "rps", "", None),
    ("haproxy-jwt / haproxy (req/s)", "haproxy-jwt", "haproxy", "rps", "", None),
    ("haproxy-jwt-fresh / haproxy-jwt (req/s)", "haproxy-jwt-fresh", "haproxy-jwt", "rps", "", None),
]


def build_report(rows, skipped_note=""):
    groups = {}
    order = []
    for row in rows:
        key = (int(row["conns"]), row["body"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(row)
    lines = []
    for key in sorted(order, key=lambda k: (k[0], k[1] != "small", k[1])):
        conns, body = key
        runs = groups[key]
        scen_order = []
        for r in runs:
            if r["scenario"] not in scen_order:
                scen_order.append(r["scenario"])
        rounds = sorted({int(r["round"]) for r in runs})
        lines.append(f"### {conns} connections, GET /{body}  ({len(rounds)} interleaved rounds)")
        lines.append("")
        lines.append("| scenario | req/s | p50 ms | p99 ms | CPU µs/req (proxy) | CPU µs/req (origin) "
                     "| core 0 busy % | core 0 other % | wrk CPU % | core 1 other % | origin conns opened | flagged runs |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in scen_order:
            rs = [r for r in runs if r["scenario"] == s]
            med = {m: _median([_f(r.get(m)) for r in rs]) for m in
                   ("rps", "p50_us", "p99_us", "cpu_us_per_req", "origin_cpu_us_per_req", "cpu0_busy_pct",
                    "cpu0_other_pct", "wrk_cpu_pct", "cpu1_other_pct", "origin_conns")}
            kinds = {}
            for r in rs:
                for word in r["flag"].split():
                    kind = word.split("(")[0].split("=")[0]
                    if kind in ("errors", "short-responses", "token-reuse", "client-bound", "noisy"):
                        kinds[kind] = kinds.get(kind, 0) + 1
            err = ", ".join(f"{n}/{len(rs)} {k}" for k, n in sorted(kinds.items())) or f"0/{len(rs)}"
            ms = lambda us: us / 1000 if us is not None else None  # noqa: E731
            lines.append(
                f"| {s} | {_fmt(med['rps'])} | {_fmt(ms(med['p50_us']), 2)} | {_fmt(ms(med['p99_us']), 2)} "
                f"| {_fmt(med['cpu_us_per_req'], 1)} | {_fmt(med['origin_cpu_us_per_req'], 1)} "
                f"| {_fmt(med['cpu0_busy_pct'])} | {_fmt(med['cpu0_other_pct'])} | {_fmt(med['wrk_cpu_pct'])} "
                f"| {_fmt(med['cpu1_other_pct'])} | {_fmt(med['origin_conns'])} | {err} |")
        lines.append("")
        lines.append("| paired ratio (per round, then median) | median | min – max | rounds | target |")
        lines.append("|---|---:|---:|---:|---|")
        by = {(r["scenario"], int(r["round"])): r for r in runs}
        for label, num, den, metric, target, check in RATIOS:
            vals = []
            for rd in rounds:
                a, b = by.get((num, rd)), by.get((den, rd))
                if a and b and _f(a[metric]) and _f(b[metric]):
                    vals.append(_f(a[metric]) / _f(b[metric]))
            if not vals:
                if num.startswith("iap") and skipped_note:
                    lines.append(f"| {label} | n/a | | | {target} ({skipped_note}) |")
                continue
            m = statistics.median(vals)
            verdict = ""
            if check is not None:
                verdict = " — met" if check(m) else " — NOT met"
            lines.append(f"| {label} | {m:.3f} | {min(vals):.3f} – {max(vals):.3f} | {len(vals)} "
                         f"| {target}{verdict} |")
        reuse = [r for r in runs if (_f(r.get("token_reuse")) or 0) > 0]
        if reuse:
            lines.append("")
            lines.append("Token pool wrapped in: " + ", ".join(
                f"{r['scenario']} round {r['round']} ({int(float(r['token_reuse']))} of "
                f"{int(float(r['tokens_sent']))} requests reused a token)" for r in reuse))
        lines.append("")
    return "\n".join(lines)


def cmd_report(args):
    with open(args.csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        fail(f"{args.csv} has no runs")
    text = build_report(rows, args.skipped_note)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)


# --------------------------------------------------------------------------- idle connections

def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def tcp_mem_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return 0


def _read_response(sock):
    """Read one whole response (Content-Length framed) to a request already sent. Returns the status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        if name == b"connection" and b"close" in value.lower():
            raise ConnectionError("server answered Connection: close")
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return status


def cmd_hold(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.count + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            fail(f"open-file limit {hard} is below {want}; raise ulimit -n")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    pids = [int(p) for p in args.pids.split(",")]
    token = open(args.token_file).readline().strip() if args.token_file else ""
    req = (f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
           + (f"x-goog-iap-jwt-assertion: {token}\r\n" if token else "") + "\r\n").encode()

    def open_batch(n):
        socks = [socket.create_connection(("127.0.0.1", args.port), timeout=30) for _ in range(n)]
        for s in socks:  # send all first so the server works on the whole batch at once
            s.sendall(req)
        return socks, [_read_response(s) for s in socks]

    # Warm up: the server's buffers, pools and upstream connections exist before the baseline.
    warm, _ = open_batch(args.batch)
    for s in warm:
        s.sendall(req)
        _read_response(s)
        s.close()
    time.sleep(1.0)
    base_rss, base_tcp = rss_kib(pids), tcp_mem_pages()
    held, bad = [], 0
    t0 = time.monotonic()
    while len(held) < args.count:
        socks, statuses = open_batch(min(args.batch, args.count - len(held)))
        bad += sum(1 for x in statuses if x != 200)
        held.extend(socks)
    opened_s = time.monotonic() - t0
    time.sleep(args.settle)
    rss1, tcp1 = rss_kib(pids), tcp_mem_pages()
    time.sleep(args.settle)
    rss2 = rss_kib(pids)
    # A held connection is alive if the server has neither closed it nor sent anything unsolicited.
    poller = select.poll()  # select() cannot take fds above 1024
    for s in held:
        poller.register(s, select.POLLIN | getattr(select, "POLLRDHUP", 0))
    alive = len(held) - len(poller.poll(0))
    per_conn = (rss1 - base_rss) / len(held)
    print(f"target={args.name} connections={len(held)} non200={bad} opened_in_s={opened_s:.1f} "
          f"still_open={alive}")
    print(f"target={args.name} rss_before_kib={base_rss} rss_held_kib={rss1} rss_held_later_kib={rss2} "
          f"kib_per_conn={per_conn:.2f}")
    print(f"target={args.name} kernel_tcp_mem_delta_kib={(tcp1 - base_tcp) * 4} (both ends, not in RSS)")
    print(f"RESULT {args.name} {len(held)} {base_rss} {rss1} {rss2} {per_conn:.3f} {alive} {bad}")
    for s in held:
        s.close()


# --------------------------------------------------------------------------- discard origin

def _sink_conn(conn):
    f = conn.makefile("rb", buffering=1 << 20)
    try:
        while True:
            line = f.readline(65536)
            if not line:
                return
            if line in (b"\r\n", b"\n"):
                continue
            method, target, _ = line.decode("latin-1").split(" ", 2)
            headers = {}
            while True:
                h = f.readline(65536)
                if h in (b"\r\n", b"\n", b""):
                    break
                name, _, value = h.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            n = 0
            if "chunked" in headers.get("transfer-encoding", "").lower():
                while True:
                    size = int(f.readline(1024).split(b";")[0].strip(), 16)
                    if size == 0:
                        while f.readline(65536) not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        break
                    left = size
                    while left:
                        got = len(f.read(min(left, 1 << 20)))
                        if not got:
                            return
                        left -= got
                    n += size
                    f.readline(16)
            else:
                left = int(headers.get("content-length", "0"))
                while left:
                    got = len(f.read(min(left, 1 << 20)))
                    if not got:
                        return
                    left -= got
                    n += got
            body = f"{n}\n".encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            print(f"sink: {method} {target} body_bytes={n}", flush=True)
    except (OSError, ValueError):
        return
    finally:
        conn.close()


def cmd_sink(args):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args.port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=_sink_conn, args=(conn,), daemon=True).start()


# --------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(prog="benchtool")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("freeport")
    s.add_argument("n", type=int, nargs="?", default=1)
    s = sub.add_parser("waitport")
    s.add_argument("port", type=int)
    s.add_argument("timeout", type=float, nargs="?", default=10.0)
    s = sub.add_parser("mint")
    s.add_argument("--key", required=True)
    s.add_argument("--kid", required=True)
    s.add_argument("--audience", required=True)
    s.add_argument("--hd", default="example.com")
    s.add_argument("--count", type=int, default=1)
    s.add_argument("--offset", type=int, default=0, help="first user number (distinct payloads across pools)")
    s.add_argument("--ttl", type=int, default=600)
    s.add_argument("--now", type=int)
    s.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    s.add_argument("--variant", default="valid",
                   choices=["valid", "tampered", "otherkey", "expired", "wrongaud", "wrongiss", "wronghd", "badalg"])
    s.add_argument("--out", required=True)
    s = sub.add_parser("report")
    s.add_argument("csv")
    s.add_argument("out")
    s.add_argument("--skipped-note", default="")
    s = sub.add_parser("hold")
    s.add_argument("--name", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--pids", required=True, help="comma-separated pids whose VmRSS is summed")
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--batch", type=int, default=100)
    s.add_argument("--path", default="/small")
    s.add_argument("--token-file")
    s.add_argument("--settle", type=float, default=2.0)
    s = sub.add_parser("sink")
    s.add_argument("port", type=int)
    args = p.parse_args()
    {"freeport": cmd_freeport, "waitport": cmd_waitport, "mint": cmd_mint, "report": cmd_report,
     "hold": cmd_hold, "sink": cmd_sink}[args.cmd](args)


if __name__ == "__main__":
    main()
