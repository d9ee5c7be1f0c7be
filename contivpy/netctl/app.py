"""Top level of netctl: ``run(argv) -> exit status`` (codegangsta ``App.Run`` semantics).

Order of checks: parse the global flags (up to the command name); two forms of one flag
-> message + app help; a parse error -> "Incorrect Usage." + app help; ``-h`` -> app help;
``-v`` -> "netctl version" + version block; then dispatch the command (unknown name ->
"No help topic for '<name>'"; none -> app help). Help and version exit 0 like the original;
usage errors and unknown commands add a one-line hint on stderr and exit 2 (the original exited
0; docs/decisions.md).

``run`` never lets an exception escape as a traceback: ``Exit`` carries the status,
Ctrl-C exits 130 quietly, a closed stdout pipe exits quietly, anything unexpected is
logged as one error line (exit 1).
"""

import sys

from contivpy.netctl.cli import HELP_FLAG, VERSION_FLAG, App, FlagSet, UsageError, help_command, run_command
from contivpy.netctl.output import Exit, OutputError, log_error, out


def build_app(argv0: str) -> App:
    from contivpy.netctl.tree import CLIENT_VERSION, COMMANDS, NETMASTER_FLAGS, version_block

    name = argv0.rpartition("/")[2]
    if not name or name.endswith(".py") or name.startswith("-"):
        name = "netctl"  # python -m contivpy.netctl
    commands = list(COMMANDS) + [help_command()]
    for c in commands:
        c.help_name = f"{name} {c.name}"
    flags = [*NETMASTER_FLAGS, HELP_FLAG, VERSION_FLAG]
    return App(
        name,
        "A command line client for Contiv netplugin",
        commands,
        flags,
        "\n" + version_block(CLIENT_VERSION),
    )


def _run(argv: list[str]) -> int:
    from contivpy.netctl.cli import render_app_help, unknown_command, usage_exit

    if argv and argv[-1] == "--generate-bash-completion":  # asked by the shell completion scripts
        from contivpy.netctl.completion import candidates

        words = candidates(argv[1:-1])
        out("".join(w + "\n" for w in words))
        return 0
    app = build_app(argv[0] if argv else "netctl")
    fs = FlagSet(app.flags)
    perr = None
    try:
        fs.parse(argv[1:])
    except UsageError as e:
        perr = e
    try:
        fs.normalize()
    except UsageError as nerr:
        out(f"{nerr}\n")
        out(render_app_help(app))
        usage_exit(app.name, str(nerr))
    if perr is not None:
        out("Incorrect Usage.\n\n")
        out(render_app_help(app))
        usage_exit(app.name, str(perr))
    if fs.get("help"):
        out(render_app_help(app))
        return 0
    if fs.get("version"):
        out(f"{app.name} version {app.version}\n")
        return 0
    args = fs.args
    if args:
        c = app.find(args[0])
        if c is not None:
            run_command(app, c, args, fs)
            return 0
        unknown_command(app, args[0])
    out(render_app_help(app))
    return 0


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null: what stdout still buffers is dropped at exit instead of failing
    again (and Python printing its own complaint) when the interpreter flushes it."""
    try:
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except OSError:
        pass


def run(argv: list[str]) -> int:
    try:
        return _run(argv)
    except Exit as e:
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except OutputError as e:
        _silence_stdout()
        try:
            log_error(str(e))
        except OSError:
            pass
        return 1
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback
        try:
            log_error(f"internal error: {type(e).__name__}: {e}")
        except Exception:  # noqa: BLE001
            pass
        return 1
    finally:
        client = sys.modules.get("contivpy.netctl.client")  # loaded if the command made requests
        if client is not None:
            client.close_idle()  # its keep-alive connection
