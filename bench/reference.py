"""The reference-data phase (the first; ``--only-reference`` alone): what the medicines list
costs each worker (load time, index build, memory) and what a search costs server-side,
measured in a fresh process so the figures are one worker's own (no HTTP, no queueing: the
cost the request handler adds)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

QUERIES = (
    "amox",
    "amoxicilline",
    "amoxicilline 1 g",
    "CLAMOXYL 1 g",
    "clamoxyl 1 g 12",
    "DOLIPRANE 300 mg",
    "doliprane",
    "paracetamol 500",
    "paracétamol 500 mg comprimé",
    "metformine 1000 mg",
    "glucophage 850",
    "6118001141531",
    "ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME",
    "aciclovir",
    "comprime",
    "boite",
)
"""What doctors and pharmacists type: names with and without strength, DCIs, an EAN, a whole
label, and the broad words that match most of the list (the worst case)."""
ACT_QUERIES = ("J329", "appendicectomie", "appendic", "hernie aine", "gastrectomie totale", "j3")
"""What a doctor types in the act field: a code, a label, its start, and a chapter prefix."""
ROUNDS = 200
ROOT = Path(__file__).resolve().parents[1]
"""The repository: where the fresh process finds the ``bench`` package."""


def _timed(search: Callable[[str], object], queries: tuple[str, ...]) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {q: [] for q in queries}
    for _ in range(ROUNDS):
        for query in queries:
            t0 = time.perf_counter()
            search(query)
            timings[query].append((time.perf_counter() - t0) * 1000)
    return timings


def _percentiles(timings: dict[str, list[float]]) -> dict[str, object]:
    every = sorted(t for ts in timings.values() for t in ts)
    return {
        "p50_ms": round(statistics.median(every), 3),
        "p99_ms": round(every[int(len(every) * 0.99) - 1], 3),
        "max_ms": round(every[-1], 3),
        "worst": max(timings, key=lambda q: statistics.median(timings[q])),
        "worst_p50_ms": round(max(statistics.median(ts) for ts in timings.values()), 3),
    }


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure() -> dict[str, object]:
    """One worker's figures (run in a fresh interpreter by ``run``)."""
    import reimbursement.medicine_search as search
    from reimbursement.act_search import act_index
    from reimbursement.reference_data import load_books

    before = _rss_kib()
    started = time.perf_counter()
    books = load_books()
    loaded = time.perf_counter()
    after_load = _rss_kib()
    medicines = books.medicines.in_force(date.today())
    index = search.index_of(medicines)
    built = time.perf_counter()
    after_index = _rss_kib()
    medicines_timed = _timed(lambda q: index.search(q).ranked[:20], QUERIES)  # one page
    acts = books.acts.in_force(date.today())
    t0 = time.perf_counter()
    acts_index = act_index(acts) if acts is not None else None
    acts_built = time.perf_counter() - t0
    acts_timed = (
        _timed(lambda q: acts_index.search(q).ranked[:20], ACT_QUERIES) if acts_index else {}
    )
    return {
        "presentations": len(medicines),
        "indexed": len(index.entries),
        "load_s": round(loaded - started, 3),
        "index_s": round(built - loaded, 3),
        "rss_load_mib": round((after_load - before) / 1024, 1),
        "rss_index_mib": round((after_index - after_load) / 1024, 1),
        **_percentiles(medicines_timed),
        "acts": len(acts.acts) if acts is not None else 0,
        "acts_index_s": round(acts_built, 3),
        "acts_search": _percentiles(acts_timed) if acts_timed else None,
    }


def run() -> int:
    print("reference data: the medicines list in one worker (fresh process) ...", flush=True)
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
    done = subprocess.run(
        [sys.executable, "-c", "import json, bench.reference as b; "
         "print(json.dumps(b.measure()))"],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": path},
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(done.stderr, file=sys.stderr)
        return 1
    m = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"  {m['presentations']:,} presentations ({m['indexed']:,} reimbursable products "
        f"indexed): loaded in {m['load_s']} s (+{m['rss_load_mib']} MiB), index built in "
        f"{m['index_s']} s (+{m['rss_index_mib']} MiB)\n"
        f"  search, {len(QUERIES)} queries x {ROUNDS}: p50 {m['p50_ms']} ms, p99 {m['p99_ms']} "
        f"ms, max {m['max_ms']} ms; slowest query {m['worst']!r} (p50 {m['worst_p50_ms']} ms)",
        flush=True,
    )
    acts = m["acts_search"]
    if acts:
        print(
            f"  NGAP acts: {m['acts']:,} indexed in {m['acts_index_s']} s; search, "
            f"{len(ACT_QUERIES)} queries x {ROUNDS}: p50 {acts['p50_ms']} ms, p99 "
            f"{acts['p99_ms']} ms; slowest {acts['worst']!r} (p50 {acts['worst_p50_ms']} ms)",
            flush=True,
        )
    return 0
