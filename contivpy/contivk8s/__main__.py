"""``contivk8s`` entry point (the launcher bin/contivk8s runs ``main``)."""

from __future__ import annotations

import sys

from contivpy.contivk8s.plugin import main

if __name__ == "__main__":
    sys.exit(main())
