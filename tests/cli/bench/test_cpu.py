"""The benchmarks' CPU accounting of a service and its worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from drape.cli.bench import process_tree_cpu_s

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_counts_the_cpu_of_child_processes():
    before = process_tree_cpu_s(os.getpid())
    assert before is not None
    # Two children that burn 0.4 s of CPU each: the parent's own time barely moves.
    children = [subprocess.Popen([sys.executable, "-c", BURN + "time.sleep(5)"]) for _ in range(2)]
    try:
        now = None
        for _ in range(100):  # up to 10 s for both to finish burning
            now = process_tree_cpu_s(os.getpid())
            if now is not None and now - before >= 0.8:
                break
            time.sleep(0.1)
        assert now is not None and now - before >= 0.8
    finally:
        for child in children:
            child.kill()
            child.wait(10)


def test_a_process_that_does_not_exist_has_no_figure():
    assert process_tree_cpu_s(2**22 + 12345) is None
