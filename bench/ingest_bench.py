"""Ingest benchmark: prints a table of Rua's aggregate-report throughput and memory.

What is measured, per report size (10k, 100k and 1M records by default; the gzipped files are
made by `report_generator.py` once and cached under `bench/data/`, which git ignores):

* lxml floor: a bare `lxml.etree.fromstring(data, XMLParser(huge_tree=True))` on the
  decompressed bytes (decompression excluded). Nothing that builds a tree from the same bytes
  on this machine can be faster, so it shows how much of the budget Rua's own work takes.
* Rua parse-only: `unpack()` of the gzipped file, `open_aggregate()`, `normalise_header()`
  and every row batch consumed, with no database: decompression, parsing, normalising, and for
  large documents the worker pool (its start-up included), exactly as the pipeline
  runs them (the cyclic GC is paused as the pipeline pauses it).
* Rua full ingest: `IngestPipeline.ingest_path()` into a fresh SQLite file migrated by
  `app.db.upgrade_database()` (in a process of its own, not timed): keeping the original,
  parsing, and writing every row with Rua's durable settings (WAL, synchronous=FULL). The
  outcome must be one new report with every record.
* parsedmarc (`--parsedmarc`): parsedmarc 11.1.0 `parse_report_file(path, offline=True)` on
  the same file, in a virtualenv of its own (`bench/.parsedmarc-venv`, git-ignored, made on demand) so
  that its dependencies never meet Rua's. It is the yardstick of the project's targets.

Why this way: every measurement runs in a fresh subprocess of its own, so that memory peaks
never mix and caches, pools and imports from one do not help the next. Peak RSS is read per
process: the measuring process's own (`ru_maxrss`) and, for the parallel parser, each worker
and helper process's high-water mark (`VmHWM` in /proc, read while the pool is still up). The
total is their sum: an upper bound, since pages shared between processes count in each and
the peaks need not coincide; beside it, the tree's summed PSS (shared pages split) is
sampled from outside every 0.2 s. Times are wall clock; the CPU seconds of every process involved
are shown beside them because a small shared VM is noisy. `--repeat N` keeps the best time of
N runs (and the worst memory peak).

The targets the table lets a reader check: parse-only throughput at least 20x parsedmarc's on
the same 100k-record file; full ingest at least 10x parsedmarc's parse-only throughput; the
1M-record report ingested with a total peak RSS under 200 MB.

Usage: `.venv/bin/python bench/ingest_bench.py [--sizes 10000,100000,1000000] [--parsedmarc]
[--parsedmarc-sizes 10000,100000] [--repeat N] [--markdown]`.

Only the standard library is imported at module level: the same file runs the parsedmarc
measurement under parsedmarc's interpreter, and multiprocessing's spawn and forkserver start
methods import it again as `__mp_main__` in Rua's worker processes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
PARSEDMARC_VENV = BENCH_DIR / ".parsedmarc-venv"
PARSEDMARC_VERSION = "11.1.0"
SEED = 1
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_PARSEDMARC_SIZES = (10_000, 100_000)
TARGET_SIZE = 100_000
RSS_TARGET_SIZE = 1_000_000
PARSE_TARGET = 20.0
INGEST_TARGET = 10.0
RSS_TARGET_MB = 200.0
# an lxml tree of these documents takes about 12 bytes of memory per byte of XML
FLOOR_BYTES_PER_XML_BYTE = 13
PSS_SAMPLE_SECONDS = 0.2
TREE_SCAN_SECONDS = 1.0

KINDS = ("floor", "parse", "ingest", "parsedmarc")
LABELS = {
    "floor": "lxml fromstring (floor)",
    "parse": "Rua parse-only",
    "ingest": "Rua ingest (SQLite)",
    "parsedmarc": f"parsedmarc {PARSEDMARC_VERSION} parse",
}
MB = 1024 * 1024


# --------------------------------------------------------------------------------------------
# measuring processes (one per measurement)
# --------------------------------------------------------------------------------------------

def _use_working_tree() -> None:
    """Measure this checkout's Rua, whatever is installed in the interpreter."""
    if str(REPO_DIR) not in sys.path:
        sys.path.insert(0, str(REPO_DIR))


def _process_tree(root: int) -> list[tuple[int, int]]:
    """(pid, depth) of every live descendant of `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[tuple[int, int]] = []
    stack = [(root, 0)]
    while stack:
        pid, depth = stack.pop()
        for child in children.get(pid, []):
            found.append((child, depth + 1))
            stack.append((child, depth + 1))
    return found


def _peak_and_cpu(pid: int) -> tuple[int, float] | None:
    """(VmHWM in bytes, user+system CPU seconds) of a live process."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    hwm = next((int(line.split()[1]) * 1024 for line in status.splitlines()
                if line.startswith("VmHWM:")), 0)
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm, cpu


def _is_helper(pid: int, depth: int) -> bool:
    """The resource tracker, or a forkserver (whose forked workers are its children)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"resource_tracker" in command or (depth == 1 and b"forkserver" in command)


def _descendants_usage() -> dict[str, Any]:
    """Peaks of the parser's worker processes and of multiprocessing's helper processes.

    Workers forked by a forkserver are grandchildren that `RUSAGE_CHILDREN` never sees, and
    a pool's workers only end when it is shut down, so /proc is read while they are alive.
    """
    helpers: list[int] = []
    workers: list[int] = []
    cpu = 0.0
    for pid, depth in _process_tree(os.getpid()):
        usage = _peak_and_cpu(pid)
        if usage is None:
            continue
        (helpers if _is_helper(pid, depth) else workers).append(usage[0])
        cpu += usage[1]
    return {"helpers_rss": helpers, "workers_rss": workers, "children_cpu": cpu}


def _self_peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_floor(path: Path, records: int) -> dict[str, Any]:
    from lxml import etree

    data = gzip.decompress(path.read_bytes())
    parser = etree.XMLParser(huge_tree=True)
    cpu = _self_cpu()
    start = time.perf_counter()
    root = etree.fromstring(data, parser)
    seconds = time.perf_counter() - start
    cpu = _self_cpu() - cpu
    found = sum(1 for _ in root.iterchildren("record"))
    return {"seconds": seconds, "cpu": cpu, "records": found, "xml_bytes": len(data),
            "main_rss": _self_peak()}


def child_parse(path: Path, records: int) -> dict[str, Any]:
    _use_working_tree()
    from ingest.aggregate_normaliser import normalise_header
    from ingest.aggregate_report import RepairNotes
    from ingest.aggregate_source import open_aggregate
    from ingest.limits import DecompressionBudget, UnpackLimits
    from ingest.parallel_parser import shutdown_pool
    from ingest.unpack import ReportKind, UnpackFailure, unpack

    def opener() -> Any:
        return open(path, "rb")

    count = 0
    parsers: list[str] = []
    cpu = _self_cpu()
    start = time.perf_counter()
    gc.disable()  # as IngestPipeline does while it parses a report
    try:
        for item in unpack(opener, str(path), DecompressionBudget(UnpackLimits())):
            if isinstance(item, UnpackFailure):
                raise RuntimeError(f"{item.location}: {item.error}")
            if item.kind is not ReportKind.AGGREGATE:
                raise RuntimeError(f"{item.location}: unexpected {item.kind} report")
            with item.open() as stream:
                source = open_aggregate(stream)
                parsers.append(type(source).__name__)
                normalise_header(source.header(), RepairNotes())
                for batch in source.batches():
                    count += len(batch)
    finally:
        gc.enable()
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "records": count, "parsers": parsers, **_descendants_usage()}
    result["cpu"] = _self_cpu() - cpu + result.pop("children_cpu")
    shutdown_pool()
    result["main_rss"] = _self_peak()
    return result


def child_migrate(db: Path) -> dict[str, Any]:
    _use_working_tree()
    from app.db import upgrade_database

    upgrade_database(f"sqlite:///{db}")
    return {}


def child_ingest(path: Path, records: int, db: Path, data_dir: Path) -> dict[str, Any]:
    _use_working_tree()
    import ingest.pipeline as pipeline_module
    from app.db import create_db_engine
    from ingest.limits import UnpackLimits
    from ingest.parallel_parser import shutdown_pool
    from ingest.pipeline import IngestPipeline

    # note which parser the pipeline picked (it falls back to the serial one on any doubt)
    parsers: list[str] = []
    opened = pipeline_module.open_aggregate

    def noting_open(*args: Any, **kwargs: Any) -> Any:
        source = opened(*args, **kwargs)
        parsers.append(type(source).__name__)
        return source

    pipeline_module.open_aggregate = noting_open  # type: ignore[assignment]
    pipeline = IngestPipeline(create_db_engine(f"sqlite:///{db}"), data_dir, UnpackLimits())
    cpu = _self_cpu()
    start = time.perf_counter()
    outcome = pipeline.ingest_path(path)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "parsers": parsers, **_descendants_usage()}
    result["cpu"] = _self_cpu() - cpu + result.pop("children_cpu")
    shutdown_pool()
    result["main_rss"] = _self_peak()
    reports = outcome.reports
    if outcome.status != "ok" or len(reports) != 1 or reports[0].status != "new":
        raise RuntimeError(f"unexpected outcome: status {outcome.status}, error {outcome.error}, "
                           f"reports {[(r.status, r.error) for r in reports]}")
    result["records"] = reports[0].records
    return result


def child_parsedmarc(path: Path, records: int) -> dict[str, Any]:
    import parsedmarc

    if parsedmarc.__version__ != PARSEDMARC_VERSION:
        raise RuntimeError(f"parsedmarc {parsedmarc.__version__} found, {PARSEDMARC_VERSION} expected")
    cpu = _self_cpu()
    start = time.perf_counter()
    parsed = parsedmarc.parse_report_file(str(path), offline=True)
    seconds = time.perf_counter() - start
    cpu = _self_cpu() - cpu
    return {"seconds": seconds, "cpu": cpu, "records": len(parsed["report"]["records"]),
            "main_rss": _self_peak()}


def run_child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=(*KINDS, "migrate"))
    parser.add_argument("--file", type=Path)
    parser.add_argument("--records", type=int, default=0)
    parser.add_argument("--db", type=Path)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    result: dict[str, Any]
    if args.kind == "migrate":
        result = child_migrate(args.db)
    elif args.kind == "ingest":
        result = child_ingest(args.file, args.records, args.db, args.data_dir)
    else:
        measure: Callable[[Path, int], dict[str, Any]] = {
            "floor": child_floor, "parse": child_parse, "parsedmarc": child_parsedmarc}[args.kind]
        result = measure(args.file, args.records)
    args.out.write_text(json.dumps(result))


# --------------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------------

@dataclass
class Measurement:
    kind: str
    size: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None

    @property
    def best(self) -> dict[str, Any] | None:
        return min(self.runs, key=lambda run: run["seconds"]) if self.runs and not self.error else None

    @property
    def throughput(self) -> float | None:
        best = self.best
        return self.size / best["seconds"] if best else None

    def peak(self, key: str) -> int | None:
        """The worst peak of all runs: main, worker (largest), total (sum of processes) or pss."""
        if not self.runs or self.error:
            return None
        values = []
        for run in self.runs:
            workers = run.get("workers_rss", [])
            helpers = run.get("helpers_rss", [])
            values.append({"main": run["main_rss"], "worker": max(workers, default=0),
                           "total": run["main_rss"] + sum(workers) + sum(helpers),
                           "pss": run["tree_pss"]}[key])
        return max(values)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def summed_pss(pids: Sequence[int]) -> int:
    """Proportional set size of these processes together (shared pages split between them)."""
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in rollup.splitlines()
                       if line.startswith("Pss:")), 0)
    return total


def run_measuring_process(python: Path | str, kind: str, extra: Sequence[str]) -> dict[str, Any]:
    """Run one measurement in a fresh process, sampling its process tree's PSS meanwhile."""
    with tempfile.NamedTemporaryFile(dir=DATA_DIR, prefix=f"{kind}-", suffix=".json") as out, \
            tempfile.TemporaryFile(mode="w+") as errors:
        command = [str(python), str(Path(__file__).resolve()), "--child", kind, *extra, "--out", out.name]
        process = subprocess.Popen(command, cwd=tempfile.gettempdir(), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=errors, text=True)
        peak_pss = 0
        tree: list[int] = []
        next_scan = 0.0
        while process.poll() is None:
            if time.monotonic() >= next_scan:  # scanning /proc costs a CPU more than sampling
                tree = [process.pid, *(pid for pid, _ in _process_tree(process.pid))]
                next_scan = time.monotonic() + TREE_SCAN_SECONDS
            peak_pss = max(peak_pss, summed_pss(tree))
            time.sleep(PSS_SAMPLE_SECONDS)
        if process.returncode != 0:
            errors.seek(0)
            lines = errors.read().strip().splitlines() or [f"exit code {process.returncode}"]
            log("\n".join(f"    | {line}" for line in lines[-20:]))
            raise RuntimeError(lines[-1])
        result: dict[str, Any] = json.loads(Path(out.name).read_text())
        result["tree_pss"] = peak_pss
        return result


def measure_once(kind: str, path: Path, size: int, parsedmarc_python: Path | None) -> dict[str, Any]:
    args = ["--file", str(path), "--records", str(size)]
    if kind == "parsedmarc":
        assert parsedmarc_python is not None
        return run_measuring_process(parsedmarc_python, kind, args)
    if kind != "ingest":
        return run_measuring_process(sys.executable, kind, args)
    work = Path(tempfile.mkdtemp(dir=DATA_DIR, prefix="ingest-run-"))
    try:
        db = work / "rua.db"
        run_measuring_process(sys.executable, "migrate", ["--db", str(db)])
        return run_measuring_process(sys.executable, kind,
                                     [*args, "--db", str(db), "--data-dir", str(work / "data")])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(kind: str, path: Path, size: int, repeat: int, parsedmarc_python: Path | None) -> Measurement:
    result = Measurement(kind, size)
    for attempt in range(1, repeat + 1):
        log(f"  {LABELS[kind]}, {size:,} records, run {attempt}/{repeat} ...")
        try:
            run = measure_once(kind, path, size, parsedmarc_python)
        except (RuntimeError, OSError, ValueError) as exc:
            result.error = str(exc)
            log(f"    failed: {exc}")
            break
        if run["records"] != size:
            result.error = f"{run['records']:,} records found, {size:,} expected"
            log(f"    failed: {result.error}")
            break
        log(f"    {run['seconds']:.2f} s, {size / run['seconds']:,.0f} records/s")
        result.runs.append(run)
    return result


def ensure_parsedmarc_venv() -> Path:
    """parsedmarc in a virtualenv of its own, created (and installed into) on first use."""
    python = PARSEDMARC_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {PARSEDMARC_VENV.relative_to(REPO_DIR)} ...")
        # a venv made from inside another venv is based on the base interpreter, not on it
        subprocess.run([sys.executable, "-m", "venv", str(PARSEDMARC_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import parsedmarc; print(parsedmarc.__version__)"],
                           capture_output=True, text=True, cwd=tempfile.gettempdir())
    if probe.returncode != 0 or probe.stdout.strip() != PARSEDMARC_VERSION:
        log(f"installing parsedmarc=={PARSEDMARC_VERSION} into it ...")
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"parsedmarc=={PARSEDMARC_VERSION}"], check=True)
    return python


def report_file(size: int) -> Path:
    from report_generator import write_gzipped_report

    path = DATA_DIR / f"aggregate-{size}-seed{SEED}.xml.gz"
    if not path.exists():
        log(f"generating {path.relative_to(REPO_DIR)} (once; it is reused from then on) ...")
    return write_gzipped_report(path, size, SEED)


def inflated_size(path: Path) -> int:
    """The gzip trailer's ISIZE: the uncompressed size modulo 4 GiB (the files are smaller)."""
    with open(path, "rb") as stream:
        stream.seek(-4, os.SEEK_END)
        return int.from_bytes(stream.read(4), "little")


def available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_facts() -> list[tuple[str, str]]:
    from lxml import etree

    cpu_model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        memory = f"{int(total) / MB:.1f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    commit = subprocess.run(["git", "-C", str(REPO_DIR), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip() or "?"
    return [
        ("date", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{os.cpu_count()} CPUs ({cpu_model}), {memory} RAM, "
                    f"load average {os.getloadavg()[0]:.2f} at start"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("lxml", f"{etree.__version__} (libxml2 {'.'.join(map(str, etree.LIBXML_VERSION))})"),
        ("Rua commit", commit),
    ]


# --------------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------------

def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / MB:,.0f}"


def render_table(header: list[str], rows: list[list[str]], markdown: bool, right: set[int]) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |",
                 "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
                         for i, cell in enumerate(row)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _parser_name(run: dict[str, Any]) -> str:
    """Which of Rua's parsers read the report, and with how many worker processes."""
    names = {"ParallelAggregateReader": "parallel", "SerialAggregateSource": "serial"}
    used = [names.get(name, name) for name in dict.fromkeys(run.get("parsers", []))]
    if not used:
        return "-"
    workers = len(run.get("workers_rss", []))
    return "+".join(used) + (f" ({workers} worker{'s' if workers != 1 else ''})" if workers else "")


def results_rows(results: dict[tuple[int, str], Measurement], sizes: list[int],
                 files: dict[int, Path]) -> list[list[str]]:
    rows = []
    for size in sizes:
        parsedmarc = results.get((size, "parsedmarc"))
        yardstick = parsedmarc.throughput if parsedmarc else None
        for kind in KINDS:
            found = results.get((size, kind))
            if found is None:
                continue
            xml = f"{inflated_size(files[size]) / MB:,.0f}"
            if found.error or found.skipped:
                note = f"failed: {found.error}" if found.error else f"not run: {found.skipped}"
                rows.append([f"{size:,}", xml, LABELS[kind], note, *[""] * 8])
                continue
            best = found.best
            assert best is not None and found.throughput is not None
            ratio = "-"
            if yardstick and kind != "parsedmarc":
                ratio = f"{found.throughput / yardstick:,.1f}x"
            rows.append([
                f"{size:,}", xml, LABELS[kind], _parser_name(best),
                f"{best['seconds']:,.2f}", f"{best['cpu']:,.2f}", f"{found.throughput:,.0f}", ratio,
                _mb(found.peak("main")), _mb(found.peak("worker")) if best.get("workers_rss") else "-",
                _mb(found.peak("total")), _mb(found.peak("pss"))])
    return rows


def target_lines(results: dict[tuple[int, str], Measurement], parsedmarc_on: bool) -> list[str]:
    def verdict(ok: bool) -> str:
        return "MET" if ok else "NOT MET"

    lines = []
    yardstick = results.get((TARGET_SIZE, "parsedmarc"))
    for kind, target, what in (("parse", PARSE_TARGET, "parse-only throughput"),
                               ("ingest", INGEST_TARGET, "full ingest (SQLite) throughput")):
        claim = f"{what} >= {target:.0f}x parsedmarc's parse-only on {TARGET_SIZE:,} records"
        mine = results.get((TARGET_SIZE, kind))
        if not parsedmarc_on:
            lines.append(f"{claim}: not checked (run with --parsedmarc)")
        elif yardstick is None or yardstick.throughput is None:
            lines.append(f"{claim}: not checked (parsedmarc not measured on {TARGET_SIZE:,} records)")
        elif mine is None or mine.throughput is None:
            lines.append(f"{claim}: not checked (Rua not measured on {TARGET_SIZE:,} records)")
        else:
            ratio = mine.throughput / yardstick.throughput
            lines.append(f"{claim}: {ratio:,.1f}x -> {verdict(ratio >= target)}")
    claim = (f"{RSS_TARGET_SIZE:,}-record report ingested with total peak RSS < {RSS_TARGET_MB:.0f} MB "
             "(main + helpers + workers)")
    ingest = results.get((RSS_TARGET_SIZE, "ingest"))
    total = ingest.peak("total") if ingest else None
    if total is None:
        lines.append(f"{claim}: not checked (ingest not measured on {RSS_TARGET_SIZE:,} records)")
    else:
        pss = ingest.peak("pss") if ingest else None
        lines.append(f"{claim}: {total / MB:,.0f} MB -> {verdict(total / MB < RSS_TARGET_MB)} "
                     f"(tree PSS peak, shared pages split: {_mb(pss)} MB)")
    return lines


def print_report(facts: list[tuple[str, str]], results: dict[tuple[int, str], Measurement],
                 sizes: list[int], files: dict[int, Path], notes: list[str], parsedmarc_on: bool,
                 markdown: bool) -> None:
    header = ["records", "XML MB", "measurement", "parser", "best s", "CPU s", "records/s",
              "vs parsedmarc", "main RSS MB", "largest worker MB", "total RSS MB", "tree PSS MB"]
    table = render_table(header, results_rows(results, sizes, files), markdown,
                         right={0, 1, 4, 5, 6, 7, 8, 9, 10, 11})
    targets = target_lines(results, parsedmarc_on)
    if markdown:
        print("Ingest benchmark (`bench/ingest_bench.py`)\n")
        print("\n".join(f"- {name}: {value}" for name, value in facts))
        print()
        print(table)
        print("\nTargets:\n")
        print("\n".join(f"- {line}" for line in targets))
        print("\nNotes:\n")
        print("\n".join(f"- {line}" for line in notes))
    else:
        print("Rua ingest benchmark")
        width = max(len(name) for name, _ in facts)
        print("\n".join(f"  {name.ljust(width)}  {value}" for name, value in facts))
        print()
        print(table)
        print("\nTargets")
        print("\n".join(f"  {line}" for line in targets))
        print("\nNotes")
        print("\n".join(f"  - {line}" for line in notes))


def size_list(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of record counts: {text}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"record counts must be positive: {text}")
    return sizes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=size_list, default=list(DEFAULT_SIZES),
                        help="record counts of the reports (default 10000,100000,1000000)")
    parser.add_argument("--parsedmarc", action="store_true",
                        help=f"also measure parsedmarc {PARSEDMARC_VERSION} (own virtualenv, made on demand)")
    parser.add_argument("--parsedmarc-sizes", type=size_list, default=list(DEFAULT_PARSEDMARC_SIZES),
                        help="sizes parsedmarc is run on (default 10000,100000: 1M takes very long and GBs)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per measurement, each in a fresh process; the best time is kept")
    parser.add_argument("--markdown", action="store_true", help="print Markdown, ready for the README")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = sorted(set(args.sizes))

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(BENCH_DIR))
    facts = machine_facts()
    parsedmarc_python = ensure_parsedmarc_venv() if args.parsedmarc else None
    files = {size: report_file(size) for size in sizes}
    notes = [
        "each measurement runs in a fresh process; times are wall clock "
        + (f"(best of {args.repeat} runs; RSS is the worst of them)" if args.repeat > 1 else "(one run)")
        + "; CPU s adds every process involved",
        "Rua parse-only: unpack + open_aggregate + normalise_header + every row batch, no database; "
        "the start-up of the parser's worker pool is included (it dominates on small reports)",
        "Rua ingest: IngestPipeline.ingest_path into a fresh, migrated SQLite file (WAL, synchronous=FULL), "
        "keeping the original included",
        "lxml floor: etree.fromstring(data, XMLParser(huge_tree=True)) on the decompressed bytes, "
        "decompression excluded",
        "main RSS: the measuring process's ru_maxrss; largest worker: the largest parser worker's VmHWM; "
        "total: main + every worker + multiprocessing's helpers (resource tracker, forkserver if any), "
        "each at its own peak "
        "(an upper bound: shared pages count in each process)",
        f"tree PSS: the largest sum of PSS over the measuring process and all its descendants, "
        f"sampled from outside every {PSS_SAMPLE_SECONDS} s, the process tree every "
        f"{TREE_SCAN_SECONDS:.0f} s (shared pages split between the processes "
        "that share them; a short spike between samples can be missed)",
    ]

    results: dict[tuple[int, str], Measurement] = {}
    memory = available_memory()
    for size in sizes:
        path = files[size]
        log(f"{size:,} records: {path.relative_to(REPO_DIR)}")
        for kind in KINDS:
            if kind == "parsedmarc":
                if not args.parsedmarc:
                    continue
                if size not in args.parsedmarc_sizes:
                    skipped = Measurement(kind, size, skipped="not in --parsedmarc-sizes")
                    results[size, kind] = skipped
                    notes.append(f"parsedmarc was not run on {size:,} records: on large reports it takes "
                                 "very long and gigabytes of memory (add the size to --parsedmarc-sizes "
                                 "to run it anyway)")
                    continue
            if kind == "floor" and memory is not None:
                needed = inflated_size(path) * FLOOR_BYTES_PER_XML_BYTE
                if needed > memory * 0.8:
                    results[size, kind] = Measurement(kind, size, skipped="not enough free memory")
                    notes.append(f"lxml floor skipped on {size:,} records: its tree needs about "
                                 f"{needed / MB / 1024:,.1f} GiB, {memory / MB / 1024:,.1f} GiB available")
                    continue
            results[size, kind] = measure(kind, path, size, args.repeat, parsedmarc_python)
    if not args.parsedmarc:
        notes.append("parsedmarc not measured: run with --parsedmarc to compare and check the ratio targets")
    print_report(facts, results, sizes, files, notes, args.parsedmarc, args.markdown)
    return 1 if any(found.error for found in results.values()) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        run_child(sys.argv[2:])
    else:
        sys.exit(main(sys.argv[1:]))
