"""Run one conformance case in this process, pausing after every record it appends, so a
test can SIGKILL it part-way: `python driver.py CASE_ID CASE_DIR OUT_DIR`."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from cases import case_named  # noqa: E402

import threatlang  # noqa: E402
from threatlang.records import RecordLog  # noqa: E402

PAUSE = 0.5  # seconds after each appended record: the window the test kills in

torch.set_num_threads(1)
append = RecordLog.append


def slow_append(self, record):
    append(self, record)
    time.sleep(PAUSE)


RecordLog.append = slow_append
case_id, directory, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
directory.mkdir(parents=True, exist_ok=True)
kwargs = case_named(case_id).prepare(directory)
(directory / "spec.threat").write_text(case_named(case_id).spec_text(directory))
threatlang.run(directory / "spec.threat", output=out, quiet=True, **kwargs)
