#!/usr/bin/env python3
"""Writes Tests/Fixtures/tensorboard/: an event file written by PyTorch's SummaryWriter (the
writer TensorBoard users already have) and expected.json with the scalars in it. PruneGym's
reader must parse the file and find exactly those scalars.

    pip install torch tensorboard
    python3 tools/gen_tensorboard_fixture.py
"""
import json
import shutil
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

out = Path(__file__).resolve().parent.parent / "Tests" / "Fixtures" / "tensorboard"
shutil.rmtree(out, ignore_errors=True)
out.mkdir(parents=True)
writer = SummaryWriter(log_dir=str(out), filename_suffix=".fixture")
expected = []
for step in [0, 1, 5, 1000, 123456789]:
    for tag, value in [("return_mean", step * 0.5 - 3.25), ("loss/policy", 1.0 / (step + 1)), ("accuracy", 0.125)]:
        writer.add_scalar(tag, value, global_step=step, walltime=1700000000.0 + step)
        expected.append({"step": step, "tag": tag, "value": value})
writer.close()
(out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
print(f"wrote {out}")
