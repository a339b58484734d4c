"""`make demo`'s job (python -m scam.demo) runs offline, warns about nothing and writes its tables and figures."""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

from scam import demo


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert demo.main(["--out", str(out), "--quick"]) == 0
    # scam warns about nothing in its own demo (its warnings are UserWarnings; numerical trouble would show
    # as RuntimeWarnings); deprecation notices of other packages are not the demo's business
    loud = [w for w in caught if issubclass(w.category, (UserWarning, RuntimeWarning))]
    assert not loud, [f"{w.category.__name__}: {w.message}" for w in loud]
    for name in (*demo.FIGURES.values(), "larry_heldout.csv", "cite_holdout.csv", "larry_fates_day4.csv",
                 "summary.txt"):
        assert (out / name).stat().st_size > 0, name

    larry = pd.read_csv(out / "larry_heldout.csv").set_index("method")["value"]
    assert set(larry.index) == {"scam", "ot_interpolation", "previous"}
    assert larry["scam"] < larry["previous"]  # even at the smoke-test budget the push beats standing still
    cite = pd.read_csv(out / "cite_holdout.csv")
    assert set(cite["holdout_time"]) == {3.0, 4.0}
    w1 = cite[cite["metric"] == "w1"].groupby("method")["value"].mean()
    assert set(w1.index) == {"scam", "previous", "ot_interpolation"}
    assert w1["scam"] < w1["previous"]
    fates = pd.read_csv(out / "larry_fates_day4.csv", index_col=0)
    assert ((fates.sum(axis=1) - 1).abs() < 1e-6).all()

    summary = (out / "summary.txt").read_text()
    for text in ("What scam adds", "The parity case", "fates", "Open the figures with", *demo.FIGURES.values()):
        assert text in summary, text
    assert summary in capsys.readouterr().out + "\n"  # the summary is what the demo printed
