"""Read checkov's JSON report on stdin; print each skipped check with its reason and a summary.
Exit 1 when a check failed, a file could not be parsed (checkov itself counts that as no failure),
or nothing was checked at all. Used by `./dev checkov`."""

from __future__ import annotations

import json
import sys
from typing import Any


def verdict(report: dict[str, Any]) -> tuple[list[str], bool]:
    """The lines to print and whether the check run is a pass."""
    summary = report["summary"]
    lines = [
        f"checkov: skipped {c['check_id']} on {c['resource']} ({c['file_path']}): "
        f"{c['check_result'].get('suppress_comment', '').strip()}"
        for c in report["results"]["skipped_checks"]
    ]
    lines.extend(
        f"checkov: FAILED {c['check_id']} on {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    )
    lines.append(
        f"checkov: {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped, "
        f"{summary['parsing_errors']} files not parsed"
    )
    ok = not summary["failed"] and not summary["parsing_errors"] and summary["passed"] > 0
    return lines, ok


def main() -> int:
    """Entry point: `checkov … --output json | python3 -m tools.checkov_report`."""
    lines, ok = verdict(json.load(sys.stdin))
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
