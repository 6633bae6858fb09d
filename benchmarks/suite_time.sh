#!/bin/bash
# default test suites side by side: the landing before this session (de96c2b) and HEAD
cd /tmp/base && s=$(date +%s.%N); /tmp/venv_base/bin/python -m pytest -p no:cacheprovider -q > /tmp/suite_base.log 2>&1; e=$(date +%s.%N); echo "base $(echo "$e - $s" | bc)" 
cd /work/main && s=$(date +%s.%N); python -m pytest -p no:cacheprovider -q > /tmp/suite_new.log 2>&1; e=$(date +%s.%N); echo "new $(echo "$e - $s" | bc)"
