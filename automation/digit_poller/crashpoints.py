"""Named steps where the poller writes to git or to files: the hook the crash-point harness uses.

Every place that changes the clone, the remote or a downloaded file calls `reached(step)`. In
normal runs that is a dictionary lookup and nothing else. Two variables, set only by the tests,
turn it into fault injection:

- DIGIT_POLLER_STEP_LOG=FILE: append each step's name to FILE (how the harness learns the steps,
  so a step added to the code is covered without editing the test);
- DIGIT_POLLER_KILL_AT=K: SIGKILL the poller's whole process group (git children included) on
  reaching the K-th step (1-based). For a step inside a running git command (`running=True`),
  the kill waits DIGIT_POLLER_KILL_DELAY seconds (default 0.05) so that git is cut off mid-work.
"""

from __future__ import annotations

import os
import signal
import time

STEP_LOG = "DIGIT_POLLER_STEP_LOG"
KILL_AT = "DIGIT_POLLER_KILL_AT"
KILL_DELAY = "DIGIT_POLLER_KILL_DELAY"

_count = 0


def reached(step: str, *, running: bool = False) -> None:
    """Mark `step`; a no-op unless the crash-point harness asked for a record or a kill."""
    global _count  # noqa: PLW0603 - one counter per process, as the harness counts steps per run
    log, kill_at = os.environ.get(STEP_LOG), os.environ.get(KILL_AT)
    if not log and not kill_at:
        return
    _count += 1
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(step + "\n")
    if kill_at and int(kill_at) == _count:
        if running:
            time.sleep(float(os.environ.get(KILL_DELAY, "0.05")))
        os.killpg(os.getpgrp(), signal.SIGKILL)
