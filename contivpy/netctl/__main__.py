"""Entry point of the ``netctl`` console script (``python -m contivpy.netctl`` works too).

Kept minimal for start-up time: only ``sys`` here; everything else is imported by ``run``.
"""

import sys


def main() -> int:
    from contivpy.netctl.app import run

    return run(sys.argv)


if __name__ == "__main__":
    sys.exit(main())
