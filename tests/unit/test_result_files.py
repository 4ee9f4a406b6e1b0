"""Result files (``pipeline.common.write_json``): strict JSON of plain values, written atomically."""

from __future__ import annotations

import numpy as np
import torch

from irnet_core.pipeline.common import write_json


def test_result_json_is_strict_and_byte_for_byte_as_before(tmp_path):
    result = {
        "miou": np.float32(0.5),
        "per_class": {"cat": float("nan"), 7: (np.int64(2), np.float64(np.inf))},
        "loss": torch.tensor(0.25),
        "name": "run",
    }
    path = tmp_path / "out" / "result.json"
    write_json(path, result)
    # The bytes the workflow has always written: NaN and infinities as null, two-space indent, final newline.
    expected = (
        '{\n  "miou": 0.5,\n  "per_class": {\n    "cat": null,\n    "7": [\n      2,\n      null\n    ]\n  },\n'
        '  "loss": 0.25,\n  "name": "run"\n}\n'
    )
    assert path.read_text() == expected
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]
