"""Sum the JUnit XML files of every tier into one closing line.

Prints one line per file and then ``N passed, N failed, N skipped``; exits 1
when no test ran at all, so that an empty suite can never look green.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def main() -> int:
    root = Path(sys.argv[1])
    total = {"passed": 0, "failed": 0, "skipped": 0}
    for path in sorted(root.rglob("*.xml")):
        suites = ET.parse(path).getroot()
        counts = {"passed": 0, "failed": 0, "skipped": 0}
        for suite in suites.iter("testsuite"):
            tests = int(suite.get("tests", 0))
            failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skipped = int(suite.get("skipped", 0))
            counts["failed"] += failed
            counts["skipped"] += skipped
            counts["passed"] += tests - failed - skipped
        print(f"{path.relative_to(root)}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
        for key in total:
            total[key] += counts[key]
    print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
    return 0 if total["passed"] + total["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
