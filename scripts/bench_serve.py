"""Load benchmark of `ytnotes serve`: concurrent clients on loopback against /api/ask, for a fixed time.

    .venv/bin/python scripts/bench_serve.py [--notes ../shared/corpus/notes] [--index DIR]
                                            [--clients 8] [--seconds 30] [--endpoint ask|locate]

The index of the notes is built into --index (a temporary folder by default; an existing index of the same notes is
brought up to date, which costs nothing when they have not changed). Then the real `ytnotes serve` starts on a free
loopback port, and once it answers, each client (a thread with its own keep-alive HTTP connection) asks the
evaluation questions (scripts/eval/questions.jsonl, 468 of them, each client starting at its own place) one after
another, without pause, until the time is up. Printed: requests/s, latency percentiles over every request, and
errors (any answer but 200, or a failed connection). The clients share the machine's cores with the server.
Three runs: the server as it runs by default (one answering process per core), the same answering in its own
process (`--workers 1`), and the default server with one client. Each run also prints the CPU time the server
(with its worker processes) spent per answer, from /proc. Issue 15's two serving targets close the output: the
default server's throughput with --clients against the ceiling of scripts/serve_ceiling.py (its whole-answer row,
measured in this run just before and just after that server's run; --ceiling-seconds 0 skips it), and the
one-client p50.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # serve_ceiling, beside this script
YTNOTES = [sys.executable, "-m", "search"]
QUESTIONS = REPO / "scripts" / "eval" / "questions.jsonl"
#: The targets of issue 5, for 8 clients.
TARGET_P50_MS = 20
TARGET_P99_MS = 100
#: Issue 15's: the default server's throughput with 8 clients against the ceiling of scripts/serve_ceiling.py, and
#: one client's p50.
TARGET_SHARE = 0.90
TARGET_ONE_CLIENT_MS = 10


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank percentile of sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def start_server(
    index: Path, options: list[str], command: list[str] = YTNOTES
) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [*command, "serve", "--index", str(index), "--port", "0", *options],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if match := re.match(r"Serving (http://\S+?)/? ", line):
            # Keep reading stderr so the server never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, match.group(1)
        print(line, end="", file=sys.stderr)
    raise SystemExit(f"ytnotes serve did not start (exit {proc.wait()})")


def client(
    host: str,
    port: int,
    path: str,
    questions: list[str],
    start: int,
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=60)
    n = start
    while time.perf_counter() < deadline:
        q = questions[n % len(questions)]
        n += 1
        url = f"{path}?{urlencode({'q': q})}"
        began = time.perf_counter()
        try:
            conn.request("GET", url)
            response = conn.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection(host, port, timeout=60)
            continue
        latencies.append(time.perf_counter() - began)
        if status != 200:
            errors.append(f"{status}: {body[:200]!r}")
    conn.close()


@dataclass
class Run:
    """One timed run: every latency (ms, sorted), every error, its length, the load average before it, and the
    CPU seconds the server and its workers spent in it."""

    ms: list[float]
    errors: list[str]
    elapsed: float
    load_before: float
    server_cpu: float


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and of its children alive now (Linux /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(
    index: Path,
    questions: list[str],
    clients: int,
    seconds: float,
    endpoint: str,
    options: list[str],
    command: list[str] = YTNOTES,
) -> Run:
    """Start the server (``command``: how to run ytnotes), let the clients ask for ``seconds``."""
    proc, url = start_server(index, options, command)
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        path = f"/api/{endpoint}"
        # Warm-up, not counted: the first questions touch every page of the index once.
        client(host, port, path, questions, 0, time.perf_counter() + 2, [], [])

        latencies: list[list[float]] = [[] for _ in range(clients)]
        errors: list[list[str]] = [[] for _ in range(clients)]
        spacing = len(questions) // clients
        load_before = os.getloadavg()[0]
        cpu_before = cpu_seconds(proc.pid)
        began = time.perf_counter()
        deadline = began + seconds
        threads = [
            threading.Thread(
                target=client,
                args=(host, port, path, questions, i * spacing, deadline, latencies[i], errors[i]),
            )
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - began
        server_cpu = cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    all_ms = sorted(1000 * x for per in latencies for x in per)
    return Run(all_ms, [e for per in errors for e in per], elapsed, load_before, server_cpu)


def report(run: Run, title: str, clients: int) -> None:
    p50, p90, p99 = (percentile(run.ms, p) for p in (50, 90, 99))
    print(title)
    print(f"requests    {len(run.ms)} answered, {len(run.ms) / run.elapsed:.1f}/s")
    print(
        f"latency ms  p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {run.ms[-1] if run.ms else float('nan'):.1f}"
    )
    print(f"errors      {len(run.errors)}" + (f" (first: {run.errors[0]})" if run.errors else ""))
    if run.ms:
        print(
            f"server CPU  {1000 * run.server_cpu / len(run.ms):.1f} ms per answer (the server and its workers)"
        )
    # Other work on the machine takes cores from the server: the 1-minute load average before the run says how much.
    print(f"machine     load average {run.load_before:.2f} before the run (1 min)")
    verdict = [
        f"p50 {'≤' if p50 <= TARGET_P50_MS else '>'} {TARGET_P50_MS} ms",
        f"p99 {'≤' if p99 <= TARGET_P99_MS else '>'} {TARGET_P99_MS} ms",
        f"errors {'= 0' if not run.errors else '> 0'}",
    ]
    met = p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS and not run.errors
    for_8 = "" if clients == 8 else " (the targets are set for 8 clients)"
    print(f"targets     {'met' if met else 'NOT met'}: {', '.join(verdict)}{for_8}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notes", type=Path, default=REPO.parent / "shared" / "corpus" / "notes")
    ap.add_argument("--index", type=Path, help="index folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--endpoint", choices=("ask", "locate"), default="ask")
    ap.add_argument(
        "--ceiling-seconds",
        type=float,
        default=10.0,
        help="the answer ceiling (scripts/serve_ceiling.py) is measured for this long just before and just after "
        "the default server's run with --clients (0: not measured)",
    )
    args = ap.parse_args()
    if not args.notes.is_dir():
        raise SystemExit(f"no notes folder at {args.notes}; pass --notes")

    work = None
    if args.index is None:
        work = Path(tempfile.mkdtemp(prefix="ytnotes-bench-serve-"))
        args.index = work / "index"
    # The server as it runs by default (one answering process per core), the same answering in its own process,
    # and the default with one client.
    runs: list[tuple[int, list[str], str]] = [
        (args.clients, [], "default server"),
        (args.clients, ["--workers", "1"], "--workers 1"),
        (1, [], "default server"),
    ]
    errors = 0
    rates = []
    ceilings: list[float] = []
    p50_one_client = float("nan")
    try:
        build = subprocess.run(
            [*YTNOTES, "build", str(args.notes), "--index", str(args.index)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        if build.returncode != 0:
            raise SystemExit(f"build failed:\n{build.stderr}")
        print(build.stderr.strip().splitlines()[-1])
        questions = [
            json.loads(line)["q"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line
        ]
        for n, (clients, options, server) in enumerate(runs):
            around = n == 0 and args.ceiling_seconds > 0  # the ceiling just before and just after this run
            if around:
                ceilings.append(answer_ceiling(args.index, args.ceiling_seconds, questions))
            run = measure(args.index, questions, clients, args.seconds, args.endpoint, options)
            if around:
                ceilings.append(answer_ceiling(args.index, args.ceiling_seconds, questions))
            if clients == 1:
                p50_one_client = percentile(run.ms, 50)
            title = (
                f"{clients} client{'s' if clients != 1 else ''}, {args.seconds:.0f} s, {server}, "
                f"GET /api/{args.endpoint} on {args.notes} ({len(questions)} questions, {os.cpu_count()} cores "
                "shared by server and clients)"
            )
            report(run, title, clients)
            errors += len(run.errors)
            rates.append(len(run.ms) / run.elapsed)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"throughput  default / --workers 1 with {args.clients} clients: {rates[0] / rates[1]:.2f}x")
    if ceilings and args.endpoint == "ask":
        ceiling = statistics.mean(ceilings)
        share = rates[0] / ceiling
        print(
            f"issue 15    {args.clients} clients {rates[0]:.1f}/s = {100 * share:.1f} % of the ceiling {ceiling:.1f}/s "
            f"(scripts/serve_ceiling.py's whole answer, {os.cpu_count()} processes, no HTTP; the mean of "
            f"{', '.join(f'{c:.1f}' for c in ceilings)} measured just before and after that run): "
            f"{'met' if share >= TARGET_SHARE else 'NOT met'} (>= {100 * TARGET_SHARE:.0f} %)"
        )
        print(
            f"issue 15    1 client p50 {p50_one_client:.1f} ms: "
            f"{'met' if p50_one_client <= TARGET_ONE_CLIENT_MS else 'NOT met'} (<= {TARGET_ONE_CLIENT_MS} ms)"
        )
    return 0 if not errors else 1


def answer_ceiling(index: Path, seconds: float, questions: list[str]) -> float:
    """Whole answers per second with no HTTP, one process per core (`serve_ceiling.measure`)."""
    from serve_ceiling import measure as ceiling

    rates, _ = ceiling(index, ("answer",), os.cpu_count() or 1, seconds, 1, questions)
    return rates["answer"][0]


if __name__ == "__main__":
    raise SystemExit(main())
