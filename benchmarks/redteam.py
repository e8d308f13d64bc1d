"""Red-team the run safety promises (docs/safety.md): every case, one line each, PASS or FAIL.

    .venv/bin/python benchmarks/redteam.py

Each case is a test of tests/safety/ (real processes, real files, real signals; the full-disk case
mounts a small tmpfs and the permission case drops to the user nobody, so both need root). The
script runs them all, slow ones included, and prints the issue's case number, the case and the
verdict; it exits non-zero when any case fails.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("1", "two runs on one run directory", "test_a_second_run_on_a_busy_run_directory"),
    ("1", "the lock dies with a killed run", "test_the_lock_dies_with_a_killed_run"),
    ("2", "--fresh on a folder prepflow did not make", "test_fresh_refuses_a_folder"),
    ("2", "--fresh deletes only what prepflow wrote", "test_fresh_deletes_only_what"),
    ("3", "output over the input (same, link, glob, inside)", "test_an_output_over_the_input"),
    ("4", "output over a directory; dir/ means datasets", "test_an_output_over_a_directory"),
    ("5", "a user's folder as run directory", "test_a_users_folder_is_not_taken"),
    ("6", "credentials in --base-url", "test_credentials_in_the_base_url"),
    ("6", "a redacted URL is never used", "test_a_stored_redacted_url"),
    ("7", "deeply nested JSON", "test_deep_nesting_is_quarantined"),
    ("8", "truncated .jsonl.gz, then fixed", "test_a_truncated_gzip"),
    ("8", "truncated Parquet", "test_a_truncated_parquet"),
    ("8", "disk full (tmpfs), then space freed", "test_a_full_disk"),
    ("8", "permission denied: input, run dir, pipeline", "test_permission_denied"),
    ("9", "quarantine idempotent over re-runs, resumes, retry", "test_quarantine_is_idempotent"),
    ("10", "NaN and Infinity", "test_non_finite_numbers"),
    ("11", "SIGKILL leaves no worker process", "test_no_process_of_a_run_survives"),
    ("12", "stale temporary files", "test_stale_temporary_files"),
    ("13", "SIGINT and SIGTERM stop cleanly, then resume", "test_sigint_and_sigterm"),
    ("14", "accounting from files, every LLM pipeline", "test_every_row_of_every_llm_pipeline"),
    ("14", "accounting from files, text-pretrain-clean", "test_every_row_of_text_pretrain_clean"),
    ("14", "accounting after a kill and resume", "test_accounting_holds_after_a_kill"),
]


class Collect:
    def __init__(self) -> None:
        self.outcomes: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or report.outcome != "passed":
            name = report.nodeid.split("::")[-1]
            self.outcomes.setdefault(name, []).append(report.outcome)


def main() -> int:
    collect = Collect()
    pytest.main(
        [str(ROOT / "tests" / "safety"), "-q", "-p", "no:cacheprovider", "--no-header", "-rN"],
        plugins=[collect],
    )
    failed = 0
    print("\ncase  verdict  what")
    for number, what, prefix in CASES:
        found = [
            o for name, outs in collect.outcomes.items() if name.startswith(prefix) for o in outs
        ]
        verdict = "PASS" if found and all(o == "passed" for o in found) else "FAIL"
        if not found:
            verdict = "FAIL (not run)"
        failed += verdict != "PASS"
        print(
            f"{number:>4}  {verdict:<7}  {what}"
            + (f" ({len(found)} runs)" if len(found) > 1 else "")
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
