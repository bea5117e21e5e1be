"""benchmarks/suite.py judges issue 6's target from the steps-to-threshold of each seed."""

import importlib.util
import sys
from pathlib import Path

SUITE = Path(__file__).parent.parent / "benchmarks" / "suite.py"


def _suite():
    if str(SUITE.parent) not in sys.path:  # as when run as a script: its sibling modules
        sys.path.insert(0, str(SUITE.parent))
    spec = importlib.util.spec_from_file_location("suite", SUITE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_verdict_uses_the_median_over_all_seeds_and_names_the_best_seed():
    suite = _suite()
    by_method = {
        "ppo": [(0, 1000), (1, 2000), (2, 3000)],
        "mpc": [(0, None), (1, 150), (2, None)],  # median over seeds: never
        "classic": [(0, 500), (1, 300), (2, 900)],  # median 500 = 0.25 x PPO's 2000
    }
    text = suite.verdict(by_method, 2000.0)
    assert "best world-model method is classic: 0.250 × PPO's median (missed)" in text
    assert "Best single seed: mpc seed 1, 0.075 × (met)" in text
    by_method["classic"] = [(0, 300), (1, 400)]  # even count: mean of the middle two
    assert "classic: 0.175 × PPO's median (met)" in suite.verdict(by_method, 2000.0)
    never = {"ppo": [(0, 10)], "dream": [(0, None)]}
    assert "no world-model method reached the threshold; no seed of any did" in suite.verdict(
        never, 10.0
    )
    assert "no PPO run reached the threshold" in suite.verdict(never, None)
