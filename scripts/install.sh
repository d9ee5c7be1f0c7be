#!/bin/sh
# `make install` / `make uninstall` (docs/deployment.md).
#
# install: make a virtual environment at $PREFIX with Debian's own $BASE_PYTHON (never pip into the
# system Python: PEP 668), pip-install contivpy into it ($SRC: this checkout, or a wheel built by
# `python3 -m build`), pin its launchers to the venv's interpreter (scripts/pin-launchers.sh), link
# the commands into $SBINDIR and install the systemd units into $UNITDIR
# with ExecStart pointing at $SBINDIR and Documentation at $PREFIX, and netctl's bash and zsh
# completions into $BASHCOMPDIR and $ZSHCOMPDIR. Nothing is enabled or started:
# that stays the administrator's `systemctl enable --now`. $DESTDIR stages everything under another
# root (links and unit paths still name the final locations).
# uninstall: disable and stop the units if systemd runs them, remove the units, the completions
# (only if they are ours), the links (only links that point into $PREFIX) and the venv (only if it
# is one: pyvenv.cfg).
# Both are idempotent.
set -eu
action=${1:?usage: install.sh install|uninstall}
PREFIX=${PREFIX:-/opt/contivpy}
SBINDIR=${SBINDIR:-/usr/local/sbin}
UNITDIR=${UNITDIR:-/etc/systemd/system}
BASHCOMPDIR=${BASHCOMPDIR:-/usr/local/share/bash-completion/completions}
ZSHCOMPDIR=${ZSHCOMPDIR:-/usr/local/share/zsh/site-functions}
BASE_PYTHON=${BASE_PYTHON:-/usr/bin/python3}
DESTDIR=${DESTDIR:-}
here=$(cd "$(dirname "$0")/.." && pwd)
SRC=${SRC:-$here}
COMMANDS="netctl netmaster netplugin"
UNITS="netmaster.service netplugin.service"

case $PREFIX in /*) ;; *) echo "install.sh: PREFIX must be an absolute path, not '$PREFIX'" >&2; exit 2 ;; esac
[ "$PREFIX" != / ] || { echo "install.sh: PREFIX must not be /" >&2; exit 2; }
venv=$DESTDIR$PREFIX
# systemctl only for a real install on a host that runs systemd.
systemd_up() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

case $action in
install)
  [ -x "$BASE_PYTHON" ] || { echo "install.sh: $BASE_PYTHON not found (apt-get install python3 python3-venv)" >&2; exit 1; }
  if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv with $BASE_PYTHON"
    "$BASE_PYTHON" -m venv "$venv"
  fi
  echo "installing contivpy from $SRC into $venv"
  # A reinstall of the same version must replace the code: remove the old copy first.
  "$venv/bin/python" -m pip uninstall -q -y --disable-pip-version-check contivpy >/dev/null 2>&1 || true
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "$SRC"
  # The launchers start the venv's interpreter directly (#! line), not through sh.
  sh "$here/scripts/pin-launchers.sh" "$venv" "$PREFIX"
  mkdir -p "$DESTDIR$SBINDIR" "$DESTDIR$UNITDIR"
  for c in $COMMANDS; do
    ln -sfn "$PREFIX/bin/$c" "$DESTDIR$SBINDIR/$c"
  done
  for u in $UNITS; do
    sed -e "s|/usr/local/sbin/|$SBINDIR/|g" -e "s|/opt/contivpy/|$PREFIX/|g" \
      "$venv/share/contivpy/systemd/$u" >"$DESTDIR$UNITDIR/$u.tmp"
    chmod 0644 "$DESTDIR$UNITDIR/$u.tmp"
    mv -f "$DESTDIR$UNITDIR/$u.tmp" "$DESTDIR$UNITDIR/$u"
  done
  mkdir -p "$DESTDIR$BASHCOMPDIR" "$DESTDIR$ZSHCOMPDIR"
  install -m 0644 "$venv/share/bash-completion/completions/netctl" "$DESTDIR$BASHCOMPDIR/netctl"
  install -m 0644 "$venv/share/zsh/site-functions/_netctl" "$DESTDIR$ZSHCOMPDIR/_netctl"
  if systemd_up; then systemctl daemon-reload; fi
  echo "installed: $SBINDIR/{netctl,netmaster,netplugin}, $UNITDIR/{netmaster,netplugin}.service (not enabled)"
  ;;
uninstall)
  if systemd_up; then
    for u in $UNITS; do
      [ -f "$UNITDIR/$u" ] && systemctl disable --now "$u" >/dev/null 2>&1 || true
    done
  fi
  for u in $UNITS; do rm -f "$DESTDIR$UNITDIR/$u"; done
  for pair in "$BASHCOMPDIR/netctl:share/bash-completion/completions/netctl" \
              "$ZSHCOMPDIR/_netctl:share/zsh/site-functions/_netctl"; do
    f="$DESTDIR${pair%%:*}"; ours="$venv/${pair#*:}"
    if [ -f "$f" ] && [ -f "$ours" ] && cmp -s "$f" "$ours"; then rm -f "$f"; fi
  done
  for c in $COMMANDS; do
    l="$DESTDIR$SBINDIR/$c"
    if [ -L "$l" ] && [ "$(readlink "$l")" = "$PREFIX/bin/$c" ]; then rm -f "$l"; fi
  done
  if [ -f "$venv/pyvenv.cfg" ]; then rm -rf "$venv"; fi
  if systemd_up; then systemctl daemon-reload; fi
  echo "uninstalled contivpy from $PREFIX"
  ;;
*)
  echo "usage: install.sh install|uninstall" >&2
  exit 2
  ;;
esac
