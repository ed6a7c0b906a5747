"""The watcher that kills what a SIGKILLed driver leaves running (its local Ray's agents and workers)."""

import os
import signal
import subprocess
import sys
import time

import psutil

from nasq.search.reaper import reap_when_gone

PARENT = """
import subprocess, sys, time
from nasq.search.reaper import reap_when_gone
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
reap_when_gone()
print(child.pid, flush=True)
time.sleep(600)
"""


def _gone(pid, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_a_sigkilled_processs_descendants_are_killed_even_in_another_session():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # the watcher has seen the child
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    try:
        assert _gone(child, 10), "the child outlived its SIGKILLed parent"
    finally:
        if not _gone(child, 0):
            os.kill(child, signal.SIGKILL)


def test_the_watcher_leaves_a_live_process_alone_and_starts_once():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        reap_when_gone()
        reap_when_gone()
        me = psutil.Process()
        watchers = [p for p in me.children() if "nasq.search.reaper" in " ".join(p.cmdline())]
        assert len(watchers) == 1
        time.sleep(0.6)
        assert child.poll() is None
    finally:
        child.kill()
        child.wait()
