"""`rua` processes (`rua serve`, and the CLI tests' commands) forked from one that has already
imported the web app.

Starting `rua serve` costs about three seconds of CPU before it answers, and any `rua`
command about one and a half, nearly all of it Python importing FastAPI, SQLAlchemy,
pydantic and Rua itself; the suite starts a server for each of some two hundred tests, and
`rua` about a hundred times more, on two cores. So each test worker keeps one preloaded
process (this module, run as `python -m tests.preloaded_server`), which imports what `rua
serve` imports and then forks a child for each command a test runs. The child takes the
test's environment, working directory and standard streams, and runs the `rua` console
command's own entry point with the test's arguments: the same code as the installed script,
in its own process, killed and reaped like one. Only the interpreter's start-up and the
imports are shared.

The preloaded process speaks line-delimited JSON on its standard input and output:
`{"start": {...}}` forks a command and answers its pid; `{"poll": pid}` answers its exit
status (None while it runs), reaping it once it has exited. It holds no thread, no database
connection and no settings when it forks, so every child starts as the installed `rua` would.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

PRELOADED = ("app.main", "app.cli", "uvicorn", "uvicorn.config", "uvicorn.server", "uvicorn.main",
             "uvicorn.lifespan.on", "uvicorn.loops.auto", "uvicorn.protocols.http.auto",
             "uvicorn.protocols.websockets.auto", "psycopg", "multipart")


# -- the preloaded process ------------------------------------------------------------------------

def _serve_requests() -> None:
    import importlib

    for name in PRELOADED:
        # an optional part (a uvicorn extra, psycopg) missing: the child imports it if it can
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    assert threading.active_count() == 1, "the preloaded process must hold no thread when it forks"
    exited: dict[int, int] = {}
    for line in sys.stdin:
        request = json.loads(line)
        if "start" in request:
            pid = os.fork()
            if pid == 0:
                _run_child(request["start"])  # never returns
            answer: dict[str, Any] = {"pid": pid}
        else:
            pid = int(request["poll"])
            if pid not in exited:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    exited[pid] = os.waitstatus_to_exitcode(status)
            answer = {"returncode": exited.get(pid)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def _run_child(start: dict[str, Any]) -> None:
    code = 1
    try:
        _take_stdio(start)
        os.environ.clear()
        os.environ.update(start["env"])
        os.chdir(start["cwd"])
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = ["rua", *start["argv"]]
        from app.__main__ import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # as the interpreter would: the traceback on stderr, status 1
        traceback.print_exc()
    finally:
        try:
            atexit._run_exitfuncs()  # what a normal exit runs (pools joined, logs flushed)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _take_stdio(start: dict[str, Any]) -> None:
    """The child's standard streams: the files the test named, opened afresh, as a new
    interpreter would open them (the preloaded process's own are its request pipes)."""
    stdin = os.open(start.get("stdin") or os.devnull, os.O_RDONLY)
    out = os.open(start["stdout"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = out if start["stderr"] == start["stdout"] else \
        os.open(start["stderr"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for fd, number in ((stdin, 0), (out, 1), (err, 2)):
        os.dup2(fd, number)
    for fd in {stdin, out, err}:
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)
    sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", buffering=1,
                      closefd=False)


# -- the test side ----------------------------------------------------------------------------------

class _Preloader:
    """This test worker's preloaded process, started on first use and ended with the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        atexit.register(self.close)

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.preloaded_server"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            answer = process.stdout.readline()
            if not answer:
                raise RuntimeError(f"the preloaded server process exited with {process.wait()}")
            result: dict[str, Any] = json.loads(answer)
            return result

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=30)


_PRELOADER = _Preloader()


class RuaProcess:
    """A forked `rua` command (`serve`, or any other), driven as a `subprocess.Popen` would be
    (args, pid, poll, terminate, kill, wait, returncode)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
                 stderr: Path | None = None, stdin: Path | None = None) -> None:
        """`log` takes standard output, and standard error too unless `stderr` is given."""
        self.args = ["rua", *argv]
        self.returncode: int | None = None
        self.pid = int(_PRELOADER.ask({"start": {
            "argv": argv, "env": env, "cwd": str(cwd), "stdout": str(log), "stderr": str(stderr or log),
            "stdin": str(stdin) if stdin else None}})["pid"])

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = _PRELOADER.ask({"poll": self.pid})["returncode"]
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.02)
        return code


def run_rua(args: list[str], env: dict[str, str], cwd: Path | None = None, stdin: bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    """`subprocess.run(["rua", *args], capture_output=True, ...)`, in a forked child."""
    with tempfile.TemporaryDirectory(prefix="rua-run-") as work:
        folder = Path(work)
        out, err = folder / "stdout", folder / "stderr"
        given = None
        if stdin is not None:
            given = folder / "stdin"
            given.write_bytes(stdin)
        process = RuaProcess(args, env, cwd or Path.cwd(), out, stderr=err, stdin=given)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        return subprocess.CompletedProcess(process.args, code, _read(out), _read(err))


def run_rua_text(args: list[str], env: dict[str, str], cwd: Path | None = None, stdin: str | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`run_rua` with text in and out, as `subprocess.run(..., text=True)` gives it."""
    done = run_rua(args, env, cwd, None if stdin is None else stdin.encode(), timeout)
    return subprocess.CompletedProcess(done.args, done.returncode, _text(done.stdout), _text(done.stderr))


def _text(data: bytes) -> str:
    return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


if __name__ == "__main__":
    _serve_requests()
