#!/usr/bin/env bash
# Prepares the tutorial notebooks to run in Jupyter with the tslab (TypeScript) kernel, as a user of the library
# would: the notebooks `import { … } from "batchwise"` and get the built dist/, never ../src.
#
#   1. builds the library (tsc → dist/);
#   2. makes "batchwise" resolvable from notebooks/ for tslab's type checker (see the symlink note below);
#   3. writes a project-local kernelspec to .jupyter/kernels/tslab/kernel.json (git-ignored), so nothing is
#      installed into the user's ~/.local/share/jupyter; point Jupyter at it with JUPYTER_PATH=<project>/.jupyter;
#   4. installs Debian's jupyter-nbconvert when no Jupyter is found (headless execution needs only nbconvert);
#   5. checks, in a real tslab kernel, that a cell can import "batchwise" and display HTML.
#
# Usage: scripts/notebooks-setup.sh   (or `npm run notebooks:setup`)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

echo "1/5 building the library (dist/)"
npm run --silent build

# Why a symlink: at run time Node resolves `require("batchwise")` from notebooks/ through the package's
# self-reference (package.json name + exports → dist/; Node checks the self-reference before node_modules), and
# require() of the ESM dist works on Node >= 20.19. But tslab type-checks each cell with its bundled TypeScript 5.0
# and moduleResolution "node10", which knows neither "exports" nor self-references, so the import fails with
# "Cannot find module 'batchwise'". node10 does find a folder notebooks/node_modules/batchwise; pointing it at dist/
# mirrors the exports map (".": dist/index, "./*": dist/*) for the type checker. It lives under notebooks/
# (git-ignored by the node_modules/ rule) so that npm, which owns the root node_modules, never sees it.
echo "2/5 linking notebooks/node_modules/batchwise -> dist/ (types for tslab)"
mkdir -p notebooks/node_modules
ln -sfn ../../dist notebooks/node_modules/batchwise

echo "3/5 writing the project-local tslab kernelspec (.jupyter/kernels/tslab/kernel.json)"
mkdir -p .jupyter/kernels/tslab
cat > .jupyter/kernels/tslab/kernel.json <<EOF
{
  "argv": ["node", "$root/node_modules/tslab/bin/tslab", "kernel", "--config-path", "{connection_file}"],
  "display_name": "TypeScript (tslab)",
  "language": "typescript"
}
EOF

# The python3 first on PATH may be another interpreter without Jupyter: Debian's lives in /usr/bin.
jupyter_bin=""
for candidate in /usr/bin/jupyter "$(command -v jupyter || true)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" nbconvert --version >/dev/null 2>&1; then
    jupyter_bin="$candidate"
    break
  fi
done
if [ -z "$jupyter_bin" ]; then
  echo "4/5 no Jupyter with nbconvert found: installing Debian's jupyter-nbconvert"
  bash scripts/apt-install.sh jupyter-nbconvert
  jupyter_bin=/usr/bin/jupyter
else
  echo "4/5 using $jupyter_bin (nbconvert $("$jupyter_bin" nbconvert --version))"
fi

echo "5/5 checking that a tslab cell imports \"batchwise\" from dist/ and displays HTML"
check_dir="$(mktemp -d)"
trap 'rm -rf "$check_dir"' EXIT
# The check notebook must sit under notebooks/ (tslab's root dir is the notebook's folder and module resolution
# walks up from it to notebooks/node_modules): notebooks/out/ is git-ignored and is where the runner writes anyway.
mkdir -p notebooks/out
check_nb="notebooks/out/setup-check.ipynb"
cat > "$check_nb" <<'EOF'
{
 "cells": [
  {
   "cell_type": "code", "execution_count": null, "id": "check", "metadata": {}, "outputs": [],
   "source": [
    "import * as batchwise from \"batchwise\";\n",
    "import * as tslab from \"tslab\";\n",
    "if (typeof batchwise.createServer !== \"function\") throw new Error(\"batchwise.createServer is not exported\");\n",
    "tslab.display.html(\"<b>batchwise</b> \" + require.resolve(\"batchwise\"));"
   ]
  }
 ],
 "metadata": { "kernelspec": { "display_name": "TypeScript (tslab)", "language": "typescript", "name": "tslab" } },
 "nbformat": 4,
 "nbformat_minor": 5
}
EOF
if ! JUPYTER_PATH="$root/.jupyter" "$jupyter_bin" nbconvert --to notebook --execute --allow-errors \
  --ExecutePreprocessor.kernel_name=tslab --ExecutePreprocessor.timeout=120 \
  --output-dir "$check_dir" --output check "$check_nb" >"$check_dir/log" 2>&1; then
  rm -f "$check_nb"
  cat "$check_dir/log" >&2
  echo "error: the tslab kernel did not start" >&2
  exit 1
fi
rm -f "$check_nb"
# tslab reports type errors as stderr stream output with an empty error reply: print every non-display output.
if ! /usr/bin/env node -e '
  const nb = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const outputs = nb.cells[0].outputs;
  const html = outputs.find((o) => o.output_type === "display_data" && o.data["text/html"]);
  if (!html) {
    for (const o of outputs) console.error(o.text ? [].concat(o.text).join("") : `${o.ename}: ${o.evalue}`);
    process.exit(1);
  }
  console.log("   " + [].concat(html.data["text/html"]).join("").replace(/<[^>]+>/g, ""));
' "$check_dir/check.ipynb"; then
  echo "error: a tslab cell could not import \"batchwise\" (outputs above)" >&2
  exit 1
fi

echo "ready: run them all with \`npm run notebooks\`, or open notebooks/ in any Jupyter started with"
echo "       JUPYTER_PATH=$root/.jupyter (kernel \"TypeScript (tslab)\")"
