"""``netplugin`` entry point: parse flags (exit 22 on config errors), set up logging, run the agent.

SIGTERM/SIGINT stop the agent cleanly; like the original, bridges, ports and flows are left in place
so containers keep their connectivity while the agent is down (the host port ``contivh0`` and the iptables
nat rules too). ``netplugin --cleanup [--ovsdb ADDR]`` is the clean uninstall of host access.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from contivpy.common import fastweb

fastweb.install()  # before anything imports aiohttp (config does): its client side loads on first use

from contivpy.netplugin.config import EXIT_CONFIG, ConfigError, ShowVersion, parse  # noqa: E402


async def _cleanup(cfg) -> int:
    """``netplugin --cleanup``: remove contivh0 and every iptables rule tagged contivpy (agent stopped)."""
    from contivpy.common.errors import ContivError
    from contivpy.netplugin.datapath import Datapath

    dp = Datapath(cfg)
    try:
        await dp.remove_host_port()
    except ContivError as e:
        logging.getLogger("netplugin").error("cleanup failed: %s", e)
        return 1
    finally:
        await dp.ovs.close()
    logging.getLogger("netplugin").info("host access removed (contivh0, iptables nat rules)")
    return 0


async def _amain(cfg) -> int:
    from contivpy.netplugin.daemon import Agent, FatalConfigError

    agent = Agent(cfg)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        logging.getLogger("netplugin").info("netplugin stopping")
        return 0
    except FatalConfigError as e:
        logging.getLogger("netplugin").error("%s", e)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse(argv)
    except ShowVersion:
        from contivpy.common.version import version_text

        sys.stdout.write(version_text())
        return 0
    except ConfigError as e:
        if str(e):
            print(f"netplugin: {e}", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(
        level=cfg.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return asyncio.run(_cleanup(cfg) if cfg.cleanup else _amain(cfg))


if __name__ == "__main__":
    sys.exit(main())
