"""A job's process: the collector skips the loaded libraries at exit and still frees cycles."""

import subprocess
import sys
import textwrap

JOB = textwrap.dedent(
    """
    import atexit, gc, sys, weakref

    # registered before the job's own setting, so it runs after it: what the exit sees
    atexit.register(lambda: print("frozen at exit", gc.get_freeze_count(), flush=True))

    from workflow.core.process import YOUNG_THRESHOLD, short_lived_process

    short_lived_process()
    assert gc.isenabled() and gc.get_threshold()[0] == YOUNG_THRESHOLD

    libraries = [[i] for i in range(100_000)]  # stands in for torch's heap


    class Node:
        pass


    freed = []
    for _ in range(3):  # cycles made while working are still collected
        a, b = Node(), Node()
        a.other, b.other = b, a
        weakref.finalize(a, freed.append, 1)
        del a, b
    junk = [[] for _ in range(3 * YOUNG_THRESHOLD)]  # allocations trigger the collections
    print("cycles freed", len(freed), flush=True)
    """
)


def test_job_process_freezes_the_heap_at_exit_and_collects_while_working():
    out = subprocess.run(
        [sys.executable, "-c", JOB], capture_output=True, text=True, check=True
    ).stdout
    assert "cycles freed 3" in out
    frozen = int(out.split("frozen at exit")[1].split()[0])
    assert frozen > 100_000  # the whole heap, libraries included, is skipped by the exit
