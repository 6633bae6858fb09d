"""Run one conformance case in this process, pausing after every record it appends, so the
SIGKILL check can kill it part-way:

    python -m threatlang.testing.driver CASES_FILE CASE_ID CASE_DIR OUT_DIR

`CASES_FILE` is the file that registered the case (`threatlang.testing.register`).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

#: seconds after each appended record: the window the test kills in
PAUSE = 0.5


def main(argv: list[str]) -> None:
    import torch

    import threatlang
    from threatlang.records import RecordLog

    from .cases import case_named

    origin, case_id, directory, out = argv[0], argv[1], Path(argv[2]), Path(argv[3])
    sys.path.insert(0, str(Path(origin).parent))
    spec = importlib.util.spec_from_file_location("conformance_cases", origin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # registers its cases
    torch.set_num_threads(1)
    append = RecordLog.append

    def slow_append(self, record):
        append(self, record)
        time.sleep(PAUSE)

    RecordLog.append = slow_append
    case = case_named(case_id)
    directory.mkdir(parents=True, exist_ok=True)
    kwargs = case.prepare(directory)
    (directory / "spec.threat").write_text(case.spec_text(directory))
    threatlang.run(directory / "spec.threat", output=out, quiet=True, **kwargs)


if __name__ == "__main__":
    main(sys.argv[1:])
