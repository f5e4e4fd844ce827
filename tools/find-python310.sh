#!/usr/bin/env bash
# Prints the path of a working Python 3.10 interpreter, or explains what to install and exits 1.
# Order: $GRAFT_PYTHON, `python3.10` on PATH (if it really runs), pyenv's versions/3.10.*, /usr/bin/python3.10.
set -u
works() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; }
candidates=()
[ -n "${GRAFT_PYTHON:-}" ] && candidates+=("$GRAFT_PYTHON")
command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
if command -v pyenv >/dev/null 2>&1; then
  root="$(pyenv root 2>/dev/null)"
else
  root="${PYENV_ROOT:-$HOME/.pyenv}"
fi
for d in $(ls -d "$root"/versions/3.10.* 2>/dev/null | sort -t. -k3 -n -r); do candidates+=("$d/bin/python"); done
candidates+=(/usr/bin/python3.10 /usr/local/bin/python3.10)
for c in "${candidates[@]}"; do
  if [ -x "$c" ] && works "$c"; then echo "$c"; exit 0; fi
done
cat >&2 <<MSG
graft: no working Python 3.10 found (TFX 1.16 supports Python 3.9-3.10 only).
  Tried: ${candidates[*]:-nothing}
  Fix: install it, e.g. 'pyenv install 3.10.13' or 'apt-get install python3.10 python3.10-venv',
       or point GRAFT_PYTHON at a 3.10 interpreter: make setup GRAFT_PYTHON=/path/to/python3.10
MSG
exit 1
