"""`make demo`'s job (python -m scam.demo) runs offline and writes its tables and figures."""

from __future__ import annotations

import pandas as pd
import pytest

from scam import demo


@pytest.mark.slow
def test_demo_quick(tmp_path):
    out = tmp_path / "demo"
    assert demo.main(["--out", str(out), "--quick"]) == 0
    for name in ("holdout_w1.png", "history.png", "trajectories.png", "velocity.png", "potential.png",
                 "fate.png", "holdout.csv", "summary.txt"):
        assert (out / name).stat().st_size > 0, name
    df = pd.read_csv(out / "holdout.csv")
    assert set(df["holdout_time"]) == {3.0, 4.0}
    w1 = df[df["metric"] == "w1"].groupby("method")["value"].mean()
    assert set(w1.index) == {"scam", "previous", "ot_interpolation"}
    # even at the smoke-test budget the learned push beats standing still
    assert w1["scam"] < w1["previous"]
    assert "Held-out days" in (out / "summary.txt").read_text()
