"""``netplugin`` entry point: parse flags (exit 22 on config errors), set up logging, run the agent.

Logging is netmaster's (common/logfmt.py): logrus-like text lines on stderr, ``--use-json-log``
for one JSON object per line, ``--use-syslog``/``--syslog-url`` to send them to syslog.
SIGTERM/SIGINT stop the agent cleanly; like the original, bridges, ports and flows are left in place
so containers keep their connectivity while the agent is down (the host port ``contivh0`` and the iptables
nat rules too). ``netplugin --cleanup [--ovsdb ADDR]`` is the clean uninstall of host access.
When run as the daemon, the cyclic garbage collector is off while the modules load and the agent
starts (``common/startup.py``, as netmaster); the agent turns it on again once it is ready.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from contivpy.common import startup

if __name__ == "__main__" or sys.argv[:1] == ["netplugin"]:  # run as the daemon (python -m, bin/netplugin)
    startup.pause()  # before the other imports: they are most of the start-up

from contivpy.common import fastweb  # noqa: E402

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
    from contivpy.common.logfmt import LogSetupError
    from contivpy.common.logfmt import setup as setup_logging

    try:
        cfg = parse(argv)
    except ShowVersion:
        startup.resume()
        from contivpy.common.version import version_text

        sys.stdout.write(version_text())
        return 0
    except ConfigError as e:
        startup.resume()
        if str(e):  # logged like netmaster's: a logrus text line on stderr (argparse printed its own)
            setup_logging()
            logging.getLogger("netplugin").error("%s", e)
        return EXIT_CONFIG
    try:
        setup_logging(cfg.log_level, cfg.json_log, cfg.syslog_url if cfg.syslog else "", "netplugin")
    except LogSetupError as exc:  # stays on stderr: one error line, exit 22 like other config errors
        setup_logging()
        logging.getLogger("netplugin").error("%s", exc)
        return EXIT_CONFIG
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if cfg.cleanup:
        startup.resume()
    return asyncio.run(_cleanup(cfg) if cfg.cleanup else _amain(cfg))


if __name__ == "__main__":
    sys.exit(main())
