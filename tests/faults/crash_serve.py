"""``niaga serve`` with a crash point: the first payment authorization (the step right after
checkout reserves stock) writes the file named by ``NIAGA_CRASH_MARKER`` and hangs, so the
test can SIGKILL the server exactly between reserve and place. Run as a script:
``python tests/faults/crash_serve.py serve --db ... --port ...``."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def install() -> None:
    from kernel.services import payments

    async def hang_after_reserve(*args, **kwargs):
        Path(os.environ["NIAGA_CRASH_MARKER"]).write_text("reserved")
        while True:  # the event loop is blocked too: nothing else happens until the kill
            time.sleep(60)

    payments.authorize = hang_after_reserve


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    install()
    from kernel.cli import main

    sys.exit(main(sys.argv[1:]))
