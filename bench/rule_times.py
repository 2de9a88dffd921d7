"""Where a Snakemake run's time goes: per-rule job wall times from its log (issue 18).

    python -m bench.rule_times .snakemake/log/<run>.snakemake.log
    python -m bench.rule_times AFTER.log --baseline BEFORE.log     # ratios against a baseline

A job's wall time runs from the timestamp above its "rule X:" block to the one above its
"Finished jobid: N" line (Snakemake stamps both to the second, so a job under a second counts as
0 or 1 s). The per-job rules of a size (train_tiny_70m_0_384, evaluate_tiny_70m_0_384, ...)
are summed as one family (train, evaluate, ...). The table: jobs, summed job seconds, mean, and
share of all job time; with a baseline, the baseline's sum and baseline/ours (> 1: faster now).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_RULE = re.compile(r"^(?:local)?rule (\S+):$")
_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_DONE = re.compile(r"^Finished jobid: (\d+)")
# "train_tiny_12b_0_192", "evaluate_70m_0_143000" -> "train", "evaluate"
_PER_JOB = re.compile(r"_(?:tiny_|pythia_)?\d.*$")


@dataclass
class RunTimes:
    """Per-family job wall times (seconds) and the run's wall time (first start to last end)."""

    families: dict[str, list[float]] = field(default_factory=dict)
    wall: float = 0.0

    @property
    def job_seconds(self) -> float:
        return sum(sum(v) for v in self.families.values())


def family(rule: str) -> str:
    return _PER_JOB.sub("", rule) or rule


def parse_log(path: str | Path) -> RunTimes:
    """Job wall times of one Snakemake log (local or cluster execution)."""
    stamp = pending = None
    start: dict[int, datetime] = {}
    rule: dict[int, str] = {}
    end: dict[int, datetime] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if m := _STAMP.match(line):
            stamp = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
        elif m := _RULE.match(line):
            pending = (m.group(1), stamp)
        elif (m := _JOBID.match(line)) and pending:
            job = int(m.group(1))
            rule[job], start[job] = pending
            pending = None
        elif m := _DONE.match(line):
            end[int(m.group(1))] = stamp
    done = [j for j in rule if j in end and start[j] is not None]
    if not done:
        raise SystemExit(f"{path}: no finished jobs found (is this a Snakemake log?)")
    families: dict[str, list[float]] = defaultdict(list)
    for j in done:
        families[family(rule[j])].append((end[j] - start[j]).total_seconds())
    wall = (max(end[j] for j in done) - min(start[j] for j in done)).total_seconds()
    return RunTimes(dict(families), wall)


def table(ours: RunTimes, baseline: RunTimes | None = None) -> str:
    total = ours.job_seconds or 1.0
    head = "| rule | jobs | job s | mean s | share |"
    rule = "|---|---|---|---|---|"
    if baseline:
        head += " baseline jobs | baseline job s | ratio |"
        rule += "---|---|---|"
    lines = [head, rule]
    names = sorted(
        set(ours.families) | set(baseline.families if baseline else ()),
        key=lambda n: -max(sum(ours.families.get(n, [0])), _sum(baseline, n)),
    )
    for name in names:
        times = ours.families.get(name, [])
        row = f"| {name} | {len(times)} | {sum(times):.0f} | "
        row += f"{sum(times) / len(times):.1f} | " if times else "- | "
        row += f"{sum(times) / total:.1%} |"
        if baseline:
            base = baseline.families.get(name, [])
            ratio = f"{sum(base) / sum(times):.2f}x" if times and sum(times) else "-"
            row += f" {len(base)} | {sum(base):.0f} | {ratio} |"
        lines.append(row)
    summary = f"| all jobs | {sum(len(v) for v in ours.families.values())} | {total:.0f} | | |"
    wall = f"| wall (first start to last end) | | {ours.wall:.0f} | | |"
    if baseline:
        summary += (
            f" {sum(len(v) for v in baseline.families.values())} | {baseline.job_seconds:.0f} "
            f"| {baseline.job_seconds / total:.2f}x |"
        )
        wall += f" | {baseline.wall:.0f} | {baseline.wall / (ours.wall or 1):.2f}x |"
    return "\n".join(lines + [summary, wall])


def _sum(run: RunTimes | None, name: str) -> float:
    return sum(run.families.get(name, [0])) if run else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="a Snakemake log (.snakemake/log/*.snakemake.log)")
    parser.add_argument("--baseline", help="the log of the run to compare with")
    args = parser.parse_args(argv)
    ours = parse_log(args.log)
    print(table(ours, parse_log(args.baseline) if args.baseline else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
