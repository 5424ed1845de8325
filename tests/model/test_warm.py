"""warm_up compiles the kernels a worker's first event and first request call."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Run in a fresh process: in the test process other tests have called the kernels.
CHECK = """
import sys
from streamrec.model import ModelConfig, kernels, representations, scoring
from streamrec.model.warm import warm_up

config = ModelConfig(**eval(sys.argv[1]))
wanted = (kernels.learn_batch, scoring.score_items, scoring.top_k, scoring.continuity_for,
          representations.vectors_and_biases)
assert not any(k.signatures for k in wanted), "compiled before warm_up"
warm_up(config)
print(" ".join(k.__name__ for k in wanted if not k.signatures))
"""


@pytest.mark.parametrize("config", ["{}", "{'loss': 'bpr', 'dim': 8}",
                                    "{'loss': 'logistic', 'continuity_weight': 0.0}"])  # fmt: skip
def test_warm_up_compiles_the_learning_and_serving_kernels(config: str) -> None:
    out = subprocess.run([sys.executable, "-c", CHECK, config], capture_output=True,
                         text=True, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"not compiled by warm_up: {out.stdout.strip()}"
