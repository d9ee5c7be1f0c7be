#!/bin/sh
# Pin the installed launchers of a venv to its interpreter: pin-launchers.sh VENV [FINAL_VENV]
#
# The launchers (bin/netctl and its copies) are sh and Python at once: shipped with #!/bin/sh, sh
# finds the venv's interpreter and runs the file with `python3 -S` (a second exec, plus a readlink
# for each symbolic link on the way). Here the first line of each launcher installed in VENV/bin is
# replaced with "#!FINAL_VENV/bin/python3 -S", so that the kernel starts the interpreter directly
# (docs/benchmarks.md, "netctl start-up"). FINAL_VENV (default VENV) is where the venv is used:
# `make install DESTDIR=...` stages VENV under DESTDIR. Called by scripts/install.sh and
# scripts/install-deps.sh after pip; idempotent. A launcher is left as it is (and still works) when
# it is not one of ours, or the path would not fit a #! line (whitespace, more than 127 bytes).
set -eu
venv=${1:?usage: pin-launchers.sh VENV [FINAL_VENV]}
final=${2:-$venv}
shebang="#!$final/bin/python3 -S"
case $final in
  /*) ;;
  *) echo "pin-launchers.sh: FINAL_VENV must be an absolute path, not '$final'" >&2; exit 2 ;;
esac
case $final in *[[:space:]]*) exit 0 ;; esac
[ "${#shebang}" -le 127 ] || exit 0
[ -x "$venv/bin/python3" ] || exit 0
for c in netctl netmaster netplugin contivk8s; do
  f="$venv/bin/$c"
  [ -f "$f" ] || continue
  # ours: the polyglot launcher (second line opens the Python string that hides the sh part)
  [ "$(sed -n 2p "$f")" = '""":"' ] || continue
  [ "$(sed -n 1p "$f")" != "$shebang" ] || continue
  { echo "$shebang"; sed 1d "$f"; } >"$f.tmp"
  chmod 0755 "$f.tmp"
  mv -f "$f.tmp" "$f"
done
