"""A large-ish guarded directory write for the interruption tests (run as a script).

    python tests/interrupt_writer.py TARGET FILES TAG

Writes FILES files of 256 KB (each holding TAG) into a directory output at TARGET through
safeio.atomic_path, printing "writing" once the temporary directory exists. SIGTERM/SIGHUP are
handled like SIGINT, as in the CLI. Exit 0 when the output is in place, 130 when interrupted.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from safeio.atomic import atomic_path  # noqa: E402
from safeio.kinds import OutputKind  # noqa: E402
from safeio.signals import handle_termination_as_interrupt  # noqa: E402

KIND = OutputKind("test output", True)
BLOCK = 256 * 1024


def main() -> int:
    target, files, tag = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    handle_termination_as_interrupt()
    try:
        with atomic_path(target, kind=KIND) as tmp:
            print("writing", flush=True)
            payload = (tag.encode() * (BLOCK // len(tag) + 1))[:BLOCK]
            for i in range(files):
                (tmp / f"part-{i:04d}.bin").write_bytes(payload)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
