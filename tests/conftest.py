"""Shared pytest configuration.

Fixture modules live in tests/fixtures/*.py (etcd server, OVS per host, test bed, dockerd, ...);
every module there is loaded as a pytest plugin, so fixtures are available to all tests.
Everything a test creates is named with a prefix and removed in fixture teardown, also on failure.
"""

from pathlib import Path

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)
