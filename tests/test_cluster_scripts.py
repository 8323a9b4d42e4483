"""tests/slurm/start_cluster.sh stops only daemons it started, by pid file (the cluster
itself is shared by the test runs and is not restarted here)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

SLURM = Path(__file__).resolve().parent / "slurm"


def _stop_pidfile() -> str:
    text = (SLURM / "start_cluster.sh").read_text()
    m = re.search(r"^stop_pidfile\(\) \{\n.*?^\}\n", text, flags=re.DOTALL | re.MULTILINE)
    assert m, "start_cluster.sh defines stop_pidfile()"
    return 'say() { echo "$*"; }\n' + m.group(0)


@pytest.mark.parametrize("script", ["start_cluster.sh", "stop_cluster.sh"])
def test_no_daemon_is_found_by_name(script):
    text = (SLURM / script).read_text()
    for tool in ("pgrep", "pkill", "killall"):
        assert tool not in text, f"{script} uses {tool}"


def test_stop_pidfile_kills_its_process_only(tmp_path):
    victim = subprocess.Popen(["sleep", "60"])
    try:
        pidf = tmp_path / "slurmd.pid"
        pidf.write_text(f"{victim.pid}\n")
        # The pid is a `sleep`, not a slurmd: a recycled pid is left alone.
        subprocess.run(["bash", "-c", _stop_pidfile() + f"stop_pidfile {pidf} slurmd"], check=True)
        time.sleep(0.2)
        assert victim.poll() is None and not pidf.exists()
        pidf.write_text(f"{victim.pid}\n")
        subprocess.run(["bash", "-c", _stop_pidfile() + f"stop_pidfile {pidf} sleep"], check=True)
        assert victim.wait(timeout=10) != 0  # stopped: it was the process named in the file
    finally:
        if victim.poll() is None:
            victim.kill()
