"""Write the README figure, ``docs/larry_trajectories.png``, from the executed tutorial 2.

The figure is the output of the ``scam.pl.trajectories`` cell of
``tutorials/02_larry_counts_to_dynamics.ipynb`` (paths of the day-2 LARRY cells over the annotated cell
types), copied byte for byte, so that the README shows exactly what the committed tutorial shows.
Nothing is retrained. Run from anywhere, after re-executing the notebook::

    python docs/readme_figure.py
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "tutorials" / "02_larry_counts_to_dynamics.ipynb"
OUT = ROOT / "docs" / "larry_trajectories.png"


def main() -> None:
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "scam.pl.trajectories" in "".join(cell["source"]):
            for out in cell.get("outputs", []):
                png = out.get("data", {}).get("image/png")
                if png:
                    OUT.write_bytes(base64.b64decode(png))
                    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
                    return
    raise SystemExit(f"no trajectories figure in {NOTEBOOK}: execute the notebook first")


if __name__ == "__main__":
    main()
