#!/usr/bin/env bash
# Executes the tutorial notebooks top to bottom in a real, headless tslab kernel and writes, for each one,
# notebooks/out/<name>.ipynb (with outputs) and notebooks/out/<name>.html. Stops at the first failing cell and
# exits 1 with that cell's source and outputs (tslab reports type errors as stderr text, not as an error reply,
# so nbconvert's own message would be empty).
#
# Usage: scripts/run-notebooks.sh [notebooks/NN-name.ipynb …]   (default: every notebooks/[0-9]*.ipynb, in order)
# Environment:
#   BATCHWISE_QUICK=1                 fewer requests per measurement (CI; all six in minutes)
#   BATCHWISE_NOTEBOOK_CELL_TIMEOUT   seconds one cell may run before the notebook fails (default 900)
#   BATCHWISE_MODELS_DIR              models folder (default ../shared/models beside the project, else data/models)
#   BATCHWISE_IMAGES_DIR              sample photos (default ../shared/images beside the project)
# Run scripts/notebooks-setup.sh once first (kernelspec, import link, Jupyter); this script rebuilds dist/ itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if [ ! -f .jupyter/kernels/tslab/kernel.json ] || [ ! -e notebooks/node_modules/batchwise ]; then
  echo "error: the tslab kernel is not set up: run scripts/notebooks-setup.sh (npm run notebooks:setup) first" >&2
  exit 1
fi
# Notebooks import the built library: rebuild so they never run against a stale dist/.
npm run --silent build
# Debian's interpreter has nbclient; the python3 first on PATH may not.
python=/usr/bin/python3
if ! "$python" -c "import nbclient, nbconvert" 2>/dev/null; then
  python="$(command -v python3)"
  if ! "$python" -c "import nbclient, nbconvert" 2>/dev/null; then
    echo "error: no python3 with nbclient + nbconvert: run scripts/notebooks-setup.sh" >&2
    exit 1
  fi
fi

shared="$(cd .. && pwd)/shared"
if [ -z "${BATCHWISE_MODELS_DIR:-}" ]; then
  if [ -d "$shared/models" ]; then export BATCHWISE_MODELS_DIR="$shared/models"; else export BATCHWISE_MODELS_DIR="$root/data/models"; fi
fi
export BATCHWISE_IMAGES_DIR="${BATCHWISE_IMAGES_DIR:-$shared/images}"
export JUPYTER_PATH="$root/.jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"

if [ "$#" -gt 0 ]; then
  notebooks=("$@")
else
  notebooks=(notebooks/[0-9]*.ipynb)
fi
mkdir -p notebooks/out

echo "executing ${#notebooks[@]} notebook(s); quick mode: ${BATCHWISE_QUICK:-0}; models: $BATCHWISE_MODELS_DIR"
exec "$python" - "${BATCHWISE_NOTEBOOK_CELL_TIMEOUT:-900}" notebooks/out "${notebooks[@]}" <<'PYTHON'
import os, re, sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

cell_timeout, out_dir, paths = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
ansi = re.compile(r"\x1b\[[0-9;]*m")

def output_text(output):
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    if output.get("output_type") == "error":
        return ansi.sub("", "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]))
    return ""

# nbconvert's page sets code and output blocks to `white-space: pre`: a long line runs off the page (and off a
# printout). Wrap them instead, breaking a long token (a URL, base64) anywhere rather than overflowing.
WRAP_CSS = """<style>
pre, .highlight pre, div.output_area pre, .jp-RenderedText pre, .CodeMirror pre {
  white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: normal;
}
div.output_subarea { max-width: 100%; overflow-x: auto; }
/* A 3-line text output must not get a scroll box: only wide content (a table, a chart) may scroll sideways. */
.jp-OutputArea-output, .jp-OutputArea-output pre { overflow-y: visible !important; max-height: none !important; }
</style>"""
# nbconvert's template loads MathJax 2 from a CDN for LaTeX in markdown; these notebooks have none, and while it loads
# (or when it cannot) MathJax shows a "Loading [MathJax]" badge over the page.
MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)

def write(nb, name):
    nbformat.write(nb, os.path.join(out_dir, name + ".ipynb"))
    body, _ = HTMLExporter().from_notebook_node(nb)
    body = MATHJAX.sub("", body).replace("</head>", WRAP_CSS + "\n</head>", 1)
    with open(os.path.join(out_dir, name + ".html"), "w", encoding="utf-8") as f:
        f.write(body)

failed = []
for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    nb = nbformat.read(path, as_version=4)
    # The kernel's working directory is the notebook's folder, as in an interactive Jupyter session.
    client = NotebookClient(nb, timeout=cell_timeout, startup_timeout=120, kernel_name="tslab",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    started = time.monotonic()
    print(f"▶ {path}", flush=True)
    try:
        client.execute()
    except Exception as error:  # CellExecutionError, a cell timeout, or a dead kernel
        write(nb, name)  # the partial notebook shows everything up to the failing cell
        cell = next((c for c in reversed(nb.cells) if c.cell_type == "code" and c.get("outputs")), None)
        print(f"✗ {path} failed after {time.monotonic() - started:.0f} s: {type(error).__name__}", file=sys.stderr)
        if isinstance(error, CellExecutionError) and cell is not None:
            print("---- cell ----\n" + cell.source + "\n---- output ----", file=sys.stderr)
            print("\n".join(t for t in map(output_text, cell.outputs) if t), file=sys.stderr)
        else:
            print(str(error)[-4000:], file=sys.stderr)
        print(f"(partial output in {out_dir}/{name}.html)", file=sys.stderr)
        failed.append(path)
        break  # later notebooks build on this one's results
    write(nb, name)
    print(f"✓ {path} in {time.monotonic() - started:.0f} s → {out_dir}/{name}.ipynb, {name}.html", flush=True)

sys.exit(1 if failed else 0)
PYTHON
