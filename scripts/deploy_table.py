"""The README's Loihi 2 plan and energy table of deployed models, measured by
``psplava deploy MODEL.net --plan --limit N`` on the held-out recordings of each model's run.

    .venv/bin/python scripts/deploy_table.py results/deployed/*/model.net --limit 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--limit", type=int, default=20)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("psplava")
    print("| model | neurons | synapses | syn. memory | cores | chips | microcode layers | "
          "spikes/sample | synaptic ops/sample | energy/sample | latency/sample | "
          "ANN MACs, one frame (fp32 energy) | ANN MACs, every step (fp32 energy) |")
    print("|" + "---|" * 13)
    for m in args.models:
        out = subprocess.run([str(exe), "deploy", m, "--plan", "--limit", str(args.limit),
                              "--json"], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        p, a, e = r["plan"], r["activity"], r["estimate"]
        spikes = sum(x["spikes"] for x in a["per_layer"][1:])
        print(f"| {Path(m).parent.name} | {p['neurons']:,} | {p['synapses']:,} | "
              f"{p['synaptic_memory_bytes'] / 2**20:.1f} MiB | {p['cores']} | {p['chips']} | "
              f"{len(p['needs_microcode'])} | {spikes:,.0f} | {e['synops_per_sample']:,.0f} | "
              f"{e['energy_uj_per_sample']:.0f} uJ | {e['latency_ms_per_sample']:.2f} ms | "
              f"{e['ann_macs_per_sample']:,} ({e['ann_energy_uj_fp32']:.0f} uJ) | "
              f"{e['ann_macs_per_sample_every_step']:,} "
              f"({e['ann_energy_uj_fp32'] * a['steps'] / 1000:.1f} mJ) |")
    print(f"\n({args.limit} held-out recordings per model, {a['steps']} steps each)")


if __name__ == "__main__":
    main()
