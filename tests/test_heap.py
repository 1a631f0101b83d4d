"""deflicker.heap: the pages freed blocks leave in a thread's arena go back to the OS."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import threading
    import numpy as np
    from deflicker.bench.common import rss_bytes
    from deflicker.heap import return_free_heap

    kept = []

    def work():  # 4000 blocks of 64 KiB (under the mmap threshold: they live in this thread's arena)
        blocks = [np.ones(16 * 1024, np.float32) for _ in range(4000)]
        kept.extend(blocks[::2])  # every other one stays, so the freed half lies between live blocks

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    before = rss_bytes()
    return_free_heap()
    print((before - rss_bytes()) / 2**20)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_blocks_between_live_ones_go_back_to_the_os():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert float(out) > 0.6 * 2000 * 64 / 1024  # MB: most of the 125 MB freed
