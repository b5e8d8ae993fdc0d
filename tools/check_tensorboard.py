#!/usr/bin/env python3
"""Reads a PruneGym run's TensorBoard event files with TensorBoard's own reader and compares
every scalar with the run's metrics.csv.

    pip install tensorboard
    python3 tools/check_tensorboard.py runs/cp

Exits 0 when TensorBoard accepts every record (its reader checks the masked CRC-32C of each)
and the scalars equal the CSV columns (as float32) at each row's step; prints what it compared.
Not a dependency of PruneGym: a development tool, like the fixture generators.
"""
import csv
import math
import sys
from pathlib import Path

try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
except ImportError:
    sys.exit("tensorboard is not installed: pip install tensorboard")

STEP_COLUMNS = ["step", "samples", "update", "epoch"]


def main(run_dir: str) -> int:
    run = Path(run_dir)
    if not list(run.glob("events.out.tfevents.*")):
        print(f"{run}: no events.out.tfevents.* files", file=sys.stderr)
        return 1
    accumulator = EventAccumulator(str(run), size_guidance={"scalars": 0})
    accumulator.Reload()
    tags = accumulator.Tags()["scalars"]
    with open(run / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0].keys()) if rows else []
    step_column = next((c for c in STEP_COLUMNS if c in columns), None)
    compared = 0
    for column in columns:
        if column not in tags:
            print(f"missing tag {column!r} in the event files", file=sys.stderr)
            return 1
        events = {e.step: e.value for e in accumulator.Scalars(column)}
        for number, row in enumerate(rows, start=1):
            step = int(float(row[step_column])) if step_column else number
            if row[column] == "":
                continue
            expected = float(row[column])
            got = events.get(step)
            import struct
            expected32 = struct.unpack("f", struct.pack("f", expected))[0] if math.isfinite(expected) else expected
            same = (got is not None) and (got == expected32 or (math.isnan(got) and math.isnan(expected)))
            if not same:
                print(f"{column} at step {step}: event file has {got}, metrics.csv has {expected}", file=sys.stderr)
                return 1
            compared += 1
    print(f"TensorBoard read {len(tags)} scalar tags from {run}; {compared} values equal metrics.csv")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
