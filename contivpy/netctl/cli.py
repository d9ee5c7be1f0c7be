"""A tiny re-creation of the CLI framework netctl was built on (codegangsta/cli + Go ``flag``).

Parsing rules reproduced (they decide which command lines work, so they are the interface):

* Go ``flag``: ``-name``, ``--name``, ``-name=value``, ``--name=value``, ``-name value`` for
  non-bool flags (the next argument is taken even if it starts with ``-``); bools take no
  separate value (``-a=false`` works); ``--`` ends flags; parsing stops at the first
  non-flag argument. Unknown flag / missing value / bad int or bool -> "Incorrect Usage."
  plus the help text on *stdout* (the original's output, transcript 4.2), then a one-line hint
  on *stderr* and exit status 2 (the original exited 0: a deviation, docs/decisions.md). An
  unknown command name: "No help topic for '<name>'" on stdout, a hint, exit 2.
* Command level: every argument before the first one starting with ``-`` is positional
  and moved after the flags, so options work before *or* after the positionals
  (``rule-add p1 1 --direction in`` and ``group create -p p1 net web`` both work).
* Each flag can have several names (``tenant, t``); giving two forms of one flag is an
  error ("Cannot use two forms of the same flag: t tenant"), repeated use of one form:
  last value wins (slices append).
* Global flags (``--netmaster``, ``--insecure``, ``-h``, ``-v``) are parsed only before
  the command name; ``NETMASTER``/``INSECURE`` environment variables set their defaults.
* Help texts are rendered with codegangsta's templates and a tab-padding tabwriter.
"""

from contivpy.netctl.output import Exit, err, getenv, out
from contivpy.netctl.tabwriter import format_help


class Flag:
    __slots__ = ("kind", "names", "default", "usage", "env", "spec")

    def __init__(self, kind: str, spec: str, usage: str = "", default=None, env: str = "") -> None:
        self.kind = kind  # "string" | "bool" | "int" | "slice"
        self.spec = spec
        self.names = [n.strip() for n in spec.split(",")]
        if default is None:
            default = {"string": "", "bool": False, "int": 0, "slice": None}[kind]
        self.default = default
        self.usage = usage
        self.env = env

    def help_line(self) -> str:
        names = ", ".join(("-" if len(n) == 1 else "--") + n for n in self.names)
        if self.kind == "string":
            text = f'{names} "{self.default}"\t{self.usage}' if self.default else f"{names} \t{self.usage}"
        elif self.kind == "int":
            text = f'{names} "{self.default}"\t{self.usage}'
        elif self.kind == "bool":
            text = f"{names}\t{self.usage}"
        else:
            first = self.names[0]
            pref = "-" if len(first) == 1 else "--"
            text = f"{names} [{pref}{first} option {pref}{first} option]\t{self.usage}"
        if self.env:
            text += " [$" + ", $".join(self.env.split(",")) + "]"
        return text


HELP_FLAG = Flag("bool", "help, h", "show help")
VERSION_FLAG = Flag("bool", "version, v", "print the version")


class Command:
    def __init__(self, name, usage, action=None, args_usage="", flags=(), aliases=(), subcommands=()):
        self.name = name
        self.usage = usage
        self.action = action
        self.args_usage = args_usage
        self.flags = list(flags)
        self.aliases = list(aliases)
        self.subcommands = list(subcommands)
        self.help_name = name

    @property
    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class App:
    """An app level: the top-level netctl, or the sub-app made for a command with subcommands."""

    def __init__(self, name, usage, commands, flags, version, args_usage="") -> None:
        self.name = name
        self.help_name = name
        self.usage = usage
        self.commands = commands
        self.flags = flags
        self.version = version
        self.args_usage = args_usage

    def find(self, name: str) -> Command | None:
        for c in self.commands:
            if name in c.names:
                return c
        return None


EXIT_USAGE = 2


class UsageError(Exception):
    """A Go ``flag`` parse failure (its message becomes the one-line hint on stderr)."""


def usage_exit(where: str, why: str) -> None:
    """After the original's usage output: ``<why>; see '<where> --help'`` on stderr, exit 2."""
    err(f"{where}: {why}; see '{where} --help'\n")
    raise Exit(EXIT_USAGE)


def unknown_command(app: App, name: str) -> None:
    """Dispatch to a command that does not exist: the original's line, then the hint, exit 2."""
    out(f"No help topic for '{name}'\n")
    usage_exit(app.help_name or app.name, f"unknown command '{name}'")


def parse_go_int(s: str) -> int:
    t = s.replace("_", "") if "_" in s else s
    sign = 1
    if t[:1] in "+-" and t:
        sign = -1 if t[0] == "-" else 1
        t = t[1:]
    try:
        low = t.lower()
        if low.startswith("0x"):
            v = int(t[2:], 16)
        elif low.startswith("0b"):
            v = int(t[2:], 2)
        elif low.startswith("0o"):
            v = int(t[2:], 8)
        elif len(t) > 1 and t[0] == "0":
            v = int(t[1:], 8)
        else:
            if not t.isdigit():
                raise ValueError
            v = int(t, 10)
    except ValueError:
        raise UsageError(f'invalid value "{s}": parse error') from None
    v *= sign
    if not -(2**63) <= v < 2**63:
        raise UsageError(f'invalid value "{s}": value out of range')
    return v


_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(s: str) -> bool:
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise UsageError(f'invalid boolean value "{s}"')


class FlagSet:
    """Go ``flag.FlagSet`` over codegangsta flags, plus ``normalizeFlags``."""

    def __init__(self, flags: list[Flag]) -> None:
        self.flags = flags
        self.by_name: dict[str, Flag] = {}
        self.values: dict[str, object] = {}
        self.visited: list[str] = []
        for f in flags:
            default = f.default
            if f.env:
                default = _env_default(f, default)
            for n in f.names:
                self.by_name[n] = f
                self.values[n] = list(default or []) if f.kind == "slice" else default
            if f.kind == "slice":  # one shared list for every name, as the original
                shared: list = list(default or [])
                for n in f.names:
                    self.values[n] = shared
        self.args: list[str] = []

    def parse(self, args: list[str]) -> None:
        i = 0
        while i < len(args):
            s = args[i]
            if len(s) < 2 or s[0] != "-":
                break
            minus = 1
            if s[1] == "-":
                minus = 2
                if len(s) == 2:
                    i += 1
                    break
            name = s[minus:]
            if not name or name[0] in "-=":
                raise UsageError(f"bad flag syntax: {s}")
            i += 1
            has_value, value = False, ""
            eq = name.find("=", 1)
            if eq > 0:
                name, value, has_value = name[:eq], name[eq + 1 :], True
            f = self.by_name.get(name)
            if f is None:
                raise UsageError(f"flag provided but not defined: -{name}")
            if f.kind == "bool":
                self.values[name] = parse_go_bool(value) if has_value else True
            else:
                if not has_value and i < len(args):
                    value, has_value = args[i], True
                    i += 1
                if not has_value:
                    raise UsageError(f"flag needs an argument: -{name}")
                if f.kind == "int":
                    self.values[name] = parse_go_int(value)
                elif f.kind == "slice":
                    self.values[name].append(value)
                else:
                    self.values[name] = value
            if name not in self.visited:
                self.visited.append(name)
        self.args = args[i:]

    def normalize(self) -> None:
        """codegangsta ``normalizeFlags``: copy the used form's value to the other forms."""
        for f in self.flags:
            if len(f.names) == 1:
                continue
            used = None
            for n in f.names:
                if n in self.visited:
                    if used is not None:
                        raise UsageError(f"Cannot use two forms of the same flag: {n} {used}")
                    used = n
            if used is not None:
                for n in f.names:
                    self.values[n] = self.values[used]

    def get(self, name: str):
        return self.values.get(name)


def _env_default(f: Flag, default):
    for var in f.env.split(","):
        val = getenv(var.strip())
        if val:
            if f.kind == "bool":
                try:
                    return parse_go_bool(val)
                except UsageError:
                    return default
            return val
    return default


class Context:
    """What an action sees: positional args, flag values, global options, its command."""

    def __init__(self, app: App, command: Command, fs: FlagSet, globals_: FlagSet) -> None:
        self.app = app
        self.command = command
        self.fs = fs
        self.args = fs.args
        self.globals = globals_

    def string(self, name: str) -> str:
        return self.fs.get(name) or ""

    def int(self, name: str) -> int:
        return self.fs.get(name) or 0

    def bool(self, name: str) -> bool:
        return bool(self.fs.get(name))

    def slice(self, name: str) -> list[str]:
        return list(self.fs.get(name) or [])

    @property
    def netmaster(self) -> str:
        """The netmaster base URL without trailing slashes (``NETMASTER=http://h:9999/`` works for
        every command; the original doubled the slash and only its GETs followed the redirect)."""
        return (self.globals.get("netmaster") or "").rstrip("/")

    @property
    def insecure(self) -> bool:
        return bool(self.globals.get("insecure"))

    def show_help(self) -> None:
        """``cli.ShowSubcommandHelp(ctx)`` from inside an action: this command's help."""
        show_command_help(self.app, self.command.name)


# ------------------------------------------------------------------ help rendering


def render_app_help(app: App) -> str:
    t = f"NAME:\n   {app.name} - {app.usage}\n\nUSAGE:\n   {app.help_name} "
    t += "[global options]" if app.flags else ""
    t += " command [command options]" if app.commands else ""
    t += " " + (app.args_usage or "[arguments...]") + "\n   "
    if app.version:
        t += f"\nVERSION:\n   {app.version}\n   "
    if app.commands:
        t += "\nCOMMANDS:\n   " + "".join(f"{', '.join(c.names)}\t{c.usage}\n   " for c in app.commands)
    if app.flags:
        t += "\nGLOBAL OPTIONS:\n   " + "".join(f"{f.help_line()}\n   " for f in app.flags)
    return format_help(t + "\n")


def render_subcommand_help(app: App) -> str:
    t = f"NAME:\n   {app.help_name} - {app.usage}\n\nUSAGE:\n   {app.help_name} command"
    t += " [command options]" if app.flags else ""
    t += " " + (app.args_usage or "[arguments...]") + "\n\nCOMMANDS:\n   "
    t += "".join(f"{', '.join(c.names)}\t{c.usage}\n   " for c in app.commands)
    if app.flags:
        t += "\nOPTIONS:\n   " + "".join(f"{f.help_line()}\n   " for f in app.flags)
    return format_help(t + "\n")


def render_command_help(c: Command) -> str:
    t = f"NAME:\n   {c.help_name} - {c.usage}\n\nUSAGE:\n   {c.help_name}"
    t += " [command options]" if c.flags else ""
    t += " " + (c.args_usage or "[arguments...]")
    if c.flags:
        t += "\n\nOPTIONS:\n   " + "".join(f"{f.help_line()}\n   " for f in c.flags)
    return format_help(t + "\n")


def show_command_help(app: App, name: str) -> None:
    c = app.find(name)
    if c is not None:
        out(render_command_help(c))
    else:
        out(f"No help topic for '{name}'\n")


def _help_action(ctx: Context) -> None:
    if ctx.args:
        show_command_help(ctx.app, ctx.args[0])
    else:
        out(render_app_help(ctx.app))


HELP_COMMAND_ARGS = ("help", "Shows a list of commands or help for one command", "[command]")


def help_command() -> Command:
    name, usage, args_usage = HELP_COMMAND_ARGS
    return Command(name, usage, _help_action, args_usage, aliases=["h"])


# ------------------------------------------------------------------ running


def run_command(app: App, c: Command, args: list[str], globals_: FlagSet) -> None:
    """``Command.Run``: ``args`` starts with the command's name as typed."""
    if c.subcommands:
        return run_subapp(app, c, args, globals_)
    fs = FlagSet([*c.flags, HELP_FLAG])
    tail = args[1:]
    first = -1
    term = -1
    for i, a in enumerate(args):
        if a == "--":
            term = i
            break
        if a.startswith("-") and first == -1:
            first = i
    if first > -1:
        regular = args[1:first]
        if term > -1:
            flag_args = args[first:term]
            regular = regular + args[term:]
        else:
            flag_args = args[first:]
        tail = flag_args + regular
    where = f"{app.help_name or app.name} {c.name}"
    try:
        fs.parse(tail)
    except UsageError as e:
        out("Incorrect Usage.\n\n")
        show_command_help(app, c.name)
        usage_exit(where, str(e))
    try:
        fs.normalize()
    except UsageError as e:
        out(f"{e}\n\n")
        show_command_help(app, c.name)
        usage_exit(where, str(e))
    if fs.get("help"):
        show_command_help(app, c.name)
        return
    c.action(Context(app, c, fs, globals_))


def run_subapp(parent: App, c: Command, args: list[str], globals_: FlagSet) -> None:
    """``Command.startApp`` + ``App.RunAsSubcommand`` for a command with subcommands."""
    sub = App(f"{parent.name} {c.name}", c.usage, list(c.subcommands), [*c.flags, HELP_FLAG], parent.version)
    sub.help_name = f"{parent.name} {c.name}"
    sub.commands.append(help_command())
    for cc in sub.commands:
        cc.help_name = f"{sub.help_name} {cc.name}"
    fs = FlagSet(sub.flags)
    err = None
    try:
        fs.parse(args[1:])
    except UsageError as e:
        err = e
    try:
        fs.normalize()
    except UsageError as nerr:
        out(f"{nerr}\n\n")
        out(render_subcommand_help(sub))
        usage_exit(sub.help_name, str(nerr))
    if err is not None:
        out("Incorrect Usage.\n\n")
        out(render_subcommand_help(sub))
        usage_exit(sub.help_name, str(err))
    if fs.get("help"):
        out(render_subcommand_help(sub))
        return
    rest = fs.args
    if rest:
        cc = sub.find(rest[0])
        if cc is not None:
            return run_command(sub, cc, rest, globals_)
        unknown_command(sub, rest[0])
    out(render_subcommand_help(sub))
