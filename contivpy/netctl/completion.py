"""Shell completion for netctl.

The shell scripts (contrib/completion/bash/netctl, contrib/completion/zsh/_netctl) run the words
typed so far with ``--generate-bash-completion`` appended, as the original's urfave/cli did, and
netctl answers with the candidates for the next word, one per line:

- at a level with subcommands (the top level, ``network``, ``policy``, ...): their names and
  aliases (``help`` at the top level too);
- at a command without subcommands: its flags (``--tenant``, ``-t``, ...);
- after a flag that takes a value: nothing (the value is the user's).

Global flags before the command (``--netmaster URL``) are skipped. Nothing is sent to netmaster:
completing must work without a server.
"""

from __future__ import annotations

from contivpy.netctl.cli import HELP_FLAG, VERSION_FLAG, Flag

MARKER = "--generate-bash-completion"


def _flag_words(flags: list[Flag]) -> list[str]:
    return [("-" if len(n) == 1 else "--") + n for f in flags for n in f.names]


def _takes_value(flags: list[Flag], word: str) -> bool:
    name = word.lstrip("-").split("=", 1)[0]
    for f in flags:
        if name in f.names:
            return f.kind != "bool" and "=" not in word
    return False


def candidates(words: list[str]) -> list[str]:
    """The candidates for the word after ``words`` (the arguments after ``netctl``)."""
    from contivpy.netctl.tree import COMMANDS, NETMASTER_FLAGS

    top_flags = [*NETMASTER_FLAGS, HELP_FLAG, VERSION_FLAG]
    level = list(COMMANDS)
    flags: list[Flag] = top_flags
    at_top = True
    command = None
    skip = False
    for w in words:
        if skip:
            skip = False
            continue
        if w.startswith("-"):
            skip = _takes_value(flags, w)
            continue
        match = next((c for c in level if w in c.names), None)
        if match is None:  # a positional argument (a name): the level does not change
            continue
        command, at_top = match, False
        level = list(match.subcommands)
        flags = [*match.flags, HELP_FLAG]
    if skip:
        return []
    if level:
        names = [n for c in level for n in c.names]
        return names + (["help", "h"] if at_top else [])
    return _flag_words(flags) if command is not None else []
