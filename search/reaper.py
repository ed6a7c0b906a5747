"""Nothing of an embedded local Ray outlives its driver.

Ray ties its GCS and raylet to the driver that started them, but its dashboard and runtime-env agents and a
running trial's worker notice a SIGKILLed driver only when their own health checks time out (a minute or two),
holding CPU and memory meanwhile. :func:`reap_when_gone` starts a small watcher process that keeps a list of the
driver's descendants and kills those still there as soon as the driver is gone, however it went.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

#: how often the watcher looks: the latest descendants, and whether the driver is still there
POLL_SECONDS = 0.25


_watchers: dict[int, subprocess.Popen] = {}


def reap_when_gone(pid: int | None = None) -> None:
    """Start the watcher of process ``pid`` (default: this one), once per process. It exits by itself once that
    process is gone."""
    pid = os.getpid() if pid is None else pid
    if pid in _watchers and _watchers[pid].poll() is None:
        return
    _watchers[pid] = subprocess.Popen(
        [sys.executable, "-m", "nasq.search.reaper", str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def _descendants(driver) -> dict:
    import psutil

    me = os.getpid()
    found = {}
    try:
        for p in driver.children(recursive=True):
            try:
                if p.pid != me:
                    found[p.pid] = (p, p.create_time())
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return found


def watch(pid: int) -> None:
    """Until process ``pid`` is gone, remember its descendants; then SIGKILL those of them still running (each
    checked by its start time, so a reused pid is never hit)."""
    import psutil

    try:
        driver = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    known: dict = {}
    while True:
        try:
            if not driver.is_running() or driver.status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.Error:
            break
        known.update(_descendants(driver))
        known = {k: v for k, v in known.items() if v[0].is_running()}
        time.sleep(POLL_SECONDS)
    for proc, started in known.values():
        try:
            if proc.create_time() == started:
                proc.kill()
        except psutil.Error:
            pass


if __name__ == "__main__":
    watch(int(sys.argv[1]))
