"""``python -m nas.models.native``: build the compiled training kernels into the user cache now.

The bootstrap runs this once at install time, so the first training does not pay the ~10 s compile.
Exit status 0 with the library's path, or 1 with the reason (training then uses the pure-JAX path).
"""

from __future__ import annotations

import sys

from nas.models.native import build


def main() -> int:
    try:
        path = build(force="--force" in sys.argv)
    except RuntimeError as err:
        print(f"compiled training kernels not built: {err}", file=sys.stderr)
        return 1
    print(f"compiled training kernels: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
