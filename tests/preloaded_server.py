"""`rua serve` processes forked from one that has already imported the web app.

Starting `rua serve` costs about three seconds of CPU before it answers, nearly all of it
Python importing FastAPI, SQLAlchemy, pydantic and Rua itself; the suite starts a server for
each of some two hundred tests, on two cores. So each test worker keeps one preloaded process
(this module, run as `python -m tests.preloaded_server`), which imports what `rua serve`
imports and then forks a child for each server a test asks for. The child takes the test's
environment, working directory and log file, and runs the `rua` console command's own entry
point with `serve ...`: the same code as the installed script, in its own process, killed and
reaped like one. Only the interpreter's start-up and the imports are shared.

The preloaded process speaks line-delimited JSON on its standard input and output:
`{"start": {...}}` forks a server and answers its pid; `{"poll": pid}` answers its exit status
(None while it runs), reaping it once it has exited. It holds no thread, no database
connection and no settings when it forks, so every child starts as `rua serve` would.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
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
        log = os.open(start["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
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
    except BaseException:  # the log is where a test reads why the server died
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# -- the test side ----------------------------------------------------------------------------------

class _Preloader:
    """This test worker's preloaded process, started on first use and ended with the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._process = subprocess.Popen(
                    [sys.executable, "-m", "tests.preloaded_server"], stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
                atexit.register(self.close)
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


class ServerProcess:
    """A forked `rua serve`, driven as a `subprocess.Popen` would be (pid, poll, terminate,
    kill, wait, returncode)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        self.returncode: int | None = None
        self.pid = int(_PRELOADER.ask({"start": {"argv": argv, "env": env, "cwd": str(cwd),
                                                 "log": str(log)}})["pid"])

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
                raise subprocess.TimeoutExpired(["rua", "serve"], timeout or 0)
            time.sleep(0.02)
        return code


if __name__ == "__main__":
    _serve_requests()
