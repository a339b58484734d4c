#!/usr/bin/env bash
# Build the sdist and the wheel, install the wheel into a fresh virtualenv in a temporary folder and run the
# demo from outside the repository, so that the data shipped inside the wheel is what the demo reads.
# PYTHON: the interpreter that builds (needs `build`); TORCH_CPU: the CPU torch installed first without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_CPU=${TORCH_CPU:-2.13.0}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS

rm -rf dist
"$PYTHON" -m build --outdir dist . >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls dist/scam-*.whl)
ls -l dist
# the data the demo and the tutorials read must be inside the wheel
"$PYTHON" - "$WHEEL" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["scam/datasets/data_registry.yaml", "scam/datasets/_data/cite_demo.npz",
        "scam/datasets/_data/larry_cospar.h5ad", "scam/datasets/_data/larry_2d_demo.csv",
        "scam/datasets/_data/README.md", "scam/pp/_data/gene_sets/README.md"]
need += [f"scam/pp/_data/gene_sets/{o}_{k}.txt" for o in ("human", "mouse") for k in ("proliferation", "apoptosis")]
missing = [n for n in need if n not in names]
assert not missing, f"missing from the wheel: {missing}"
assert any(n.endswith("licenses/LICENSE") for n in names), "LICENSE not in the wheel"
print(f"wheel holds the shipped data ({len(names)} files)")
PY

"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    "$VPY" -m pip install -q "torch>=2.1"
else
    "$VPY" -m pip install -q "torch==$TORCH_CPU"
fi
"$VPY" -m pip install -q "$(pwd)/$WHEEL"
installed=$SECONDS

cd "$WORK"  # outside the repository: `import scam` is the installed wheel
"$VPY" -c "import scam, importlib.metadata as m; assert scam.__file__.startswith('$WORK'), scam.__file__; \
assert scam.__version__ == m.version('scam'); print('scam', scam.__version__, 'from', scam.__file__)"
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "$VPY" -m scam.demo --out "$WORK/demo_output" ${DEMO_ARGS:-}
ls "$WORK/demo_output"
echo "wheel-check: build + install $((installed - start)) s, demo $((SECONDS - installed)) s"
