#!/bin/bash
# The default test suites side by side: an earlier landing and this checkout, one after the other.
# Set up the earlier one once:
#   git clone . /tmp/base && git -C /tmp/base checkout de96c2b
#   python -m venv --system-site-packages /tmp/venv_base && /tmp/venv_base/bin/pip install --no-deps -e /tmp/base
BASE=${BASE:-/tmp/base}
BASE_PY=${BASE_PY:-/tmp/venv_base/bin/python}
HERE=$(cd "$(dirname "$0")/.." && pwd)
s=$(date +%s.%N); (cd "$BASE" && "$BASE_PY" -m pytest -p no:cacheprovider -q > /tmp/suite_base.log 2>&1)
e=$(date +%s.%N); echo "base $(echo "$e - $s" | bc) s"
s=$(date +%s.%N); (cd "$HERE" && python -m pytest -p no:cacheprovider -q > /tmp/suite_new.log 2>&1)
e=$(date +%s.%N); echo "new $(echo "$e - $s" | bc) s"
