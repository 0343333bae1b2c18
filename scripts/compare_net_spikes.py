"""Every committed ``.net`` file runs with the same spikes on this code as on an older revision.

    .venv/bin/python scripts/compare_net_spikes.py REV      # e.g. 3375c2f (before issue 19)

The older revision is checked out into a scratch worktree and installed into a scratch
folder; each ``.net`` file committed at REV (``results/`` and ``tests/data/``) runs in the
reference engine of both versions on one fixed input (60 steps, 2 samples, spikes with
probability 0.2; files whose input layer has a neuron get graded inputs of 64), and every
layer's output is compared.  Prints one line per file and a JSON summary last.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = r'''
import sys
import numpy as np
from psplava.netfile import read_netfile
from psplava.sim.fixed import internal_input_shape, run_fixed
out = {}
for f in sys.argv[2:]:
    net = read_netfile(f)
    x = np.random.default_rng(0).random((60, 2, *internal_input_shape(net))) < 0.2
    if net.layers[0].type == "input" and net.layers[0].neuron:
        x = x.astype(np.int64) * 64
    for i, r in enumerate(run_fixed(net, x)):
        out[f"{f}::{i}"] = np.asarray(r)
np.savez_compressed(sys.argv[1], **out)
'''


def main() -> None:
    import numpy as np

    rev = sys.argv[1] if len(sys.argv) > 1 else "HEAD"
    py = str(ROOT / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(tmp / "wt"), rev], check=True)
        try:
            subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps",
                            "--no-build-isolation", "--target", str(tmp / "old"),
                            str(tmp / "wt")], check=True, capture_output=True)
            files = subprocess.run(["git", "-C", str(tmp / "wt"), "ls-files", "*.net"],
                                   capture_output=True, text=True, check=True).stdout.split()
            files = [str(ROOT / f) for f in files if (ROOT / f).is_file()]
            (tmp / "run.py").write_text(RUN)
            for name, path in (("old", str(tmp / "old")), ("new", "")):
                # run from the scratch folder: the repository's own psplava/ folder holds
                # the core alone and must not shadow the installed one
                env = {"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}
                subprocess.run([py, str(tmp / "run.py"), str(tmp / f"{name}.npz"), *files],
                               cwd=tmp, env=env, check=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp / "wt")], check=False)
        old, new = np.load(tmp / "old.npz"), np.load(tmp / "new.npz")
        differ = []
        for f in files:
            keys = [k for k in old.files if k.split("::")[0] == f]
            bad = [k for k in keys if not np.array_equal(old[k], new[k])]
            differ += bad
            spikes = sum(int(old[k].astype(bool).sum()) for k in keys)
            print(f"{Path(f).relative_to(ROOT)}: {len(keys)} layers, {spikes} spikes, "
                  f"{len(bad)} differ", flush=True)
        print(json.dumps({"revision": rev, "files": len(files), "layers": len(old.files),
                          "layers_differ": len(differ)}))


if __name__ == "__main__":
    main()
