"""Runs a command as a child subreaper and fails if any process it started outlives it.

Every process the command (e.g. `cargo test`) starts and does not reap is
reparented to us when its parent exits: a zombie left by a test binary, or a
child still running after its test binary ended. We list them, reap or kill them,
and exit non-zero if there were any, so "no zombies, no lingering children after
the test suite" is checked, not hoped for.

Usage: python3 .ci/reap_check.py CMD [ARGS...]
"""
import ctypes
import os
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def describe(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state = stat[stat.rindex(")") + 2]
        return f"pid {pid} ({comm}, state {state})"
    except OSError:
        return f"pid {pid}"


def my_children():
    me = os.getpid()
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == me:
            kids.append(int(entry))
    return kids


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reap_check: prctl(PR_SET_CHILD_SUBREAPER) failed; running unchecked", file=sys.stderr)
    cmd = subprocess.Popen(sys.argv[1:])
    rc = cmd.wait()
    # Daemon children die with their parent via PDEATHSIG: give them a moment.
    deadline = time.monotonic() + 3.0
    while my_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    leftovers = [describe(pid) for pid in my_children()]
    for pid in my_children():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    while True:
        try:
            pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            break
    if leftovers:
        print("reap_check: processes outlived the command that started them "
              "(zombies it never reaped, or children still running):", file=sys.stderr)
        for d in leftovers:
            print(f"  {d}", file=sys.stderr)
        return rc or 1
    print("reap_check: no zombie or lingering process left behind")
    return rc


if __name__ == "__main__":
    sys.exit(main())
