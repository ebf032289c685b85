"""What the test suite's real servers (Dovecot, NSD) share: started and stopped by a script of
tests/services, all state in one directory, crashed on demand by killing the whole instance.

A server's master calls setsid(), so the PID in its PID file leads the process group of the
whole instance, and a crash is one SIGKILL to that group. This sandbox's PID 1 reaps late, so
"alive" means present and not a zombie, and PIDs are reused, so a PID counts only while its
command line still names the server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import ClassVar

SERVICES = Path(__file__).resolve().parent / "services"


class ScriptedServer:
    label: ClassVar[str]
    """The server's name in messages, e.g. "NSD"."""
    command_word: ClassVar[bytes]
    """A word of the master's command line, e.g. b"nsd"."""
    pid_file_name: ClassVar[str]
    error: ClassVar[type[RuntimeError]]

    directory: Path
    pid: int | None

    def kill(self) -> None:
        """A crash: SIGKILL every process of the instance at once, and wait until they are gone.
        Its data stays; `restart()` brings it back."""
        pid = self.pid or self._pid_from_file()
        if pid is None or not self._is_server(pid):
            self.pid = None
            return
        if os.getpgid(pid) != pid or pid == os.getpgrp():
            raise self.error(f"{pid} does not lead its own process group; refusing to kill it")
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if group_members(pid):
            raise self.error(f"processes of {self.label} {pid} survived SIGKILL: {group_members(pid)}")
        self.pid = None

    def start(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(self) -> int:
        """Stop if running (cleanly), then start again on the same directory and ports."""
        if self.is_running():
            self.stop()
        return self.start()

    def is_running(self) -> bool:
        pid = self.pid or self._pid_from_file()
        return pid is not None and self._is_server(pid)

    def _pid_from_file(self) -> int | None:
        try:
            return int((self.directory / self.pid_file_name).read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_server(self, pid: int) -> bool:
        try:
            return alive(pid) and self.command_word in Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False

    def _script(self, name: str, *args: str) -> str:
        try:
            done = subprocess.run(["bash", str(SERVICES / name), *args], check=True,
                                  capture_output=True, text=True, timeout=600)
        except subprocess.CalledProcessError as exc:
            raise self.error(f"{name} failed ({exc.returncode}): {exc.stderr[-2000:]}") from exc
        return done.stdout


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of a process, from /proc; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces
    return fields[0], int(fields[2])


def alive(pid: int) -> bool:
    """True for a running process; false for a zombie."""
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def group_members(pgid: int) -> list[int]:
    """Living (non-zombie) processes in process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                members.append(int(entry))
    return members
