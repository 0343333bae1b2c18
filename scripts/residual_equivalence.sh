#!/usr/bin/env bash
# Issue 9's spike-for-spike check on real recordings: a pre-activation ResNet-42 (20 blocks)
# and ResNet-106, each briefly trained (configs/resnet/equivalence_resnet*.yaml), exported,
# and run by the reference engine on the 100 held-out recordings and by Lava on a few, each
# compared per layer with the checkpoint's PyTorch model in loihi arithmetic (--compare).
#     bash scripts/residual_equivalence.sh [LAVA_42] [LAVA_106] [REF_42] [REF_106] [DEPTHS]
# (defaults 3 3 100 100 "42 106": Lava and reference-engine recordings per network)
# Writes results/resnet/equivalence/resnet<N>/{best.pt, model.net, reference.json, lava.json}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/psplava}
lava42=${1:-3}
lava106=${2:-3}
ref42=${3:-100}
ref106=${4:-100}
for d in ${5:-42 106}; do
  out=results/resnet/equivalence/resnet$d
  if [ ! -f "$out/best.pt" ]; then
    $PY train --config configs/resnet/equivalence_resnet$d.yaml --out "$out" --overwrite
  fi
  $PY export "$out/best.pt" -o "$out/model.net" --eval-samples 0
  r=$([ "$d" = 42 ] && echo "$ref42" || echo "$ref106")
  $PY sim "$out/model.net" --split val --limit "$r" --engine reference \
      --compare "$out/best.pt" --json --no-progress | tail -n 1 > "$out/reference.json"
  n=$([ "$d" = 42 ] && echo "$lava42" || echo "$lava106")
  $PY sim "$out/model.net" --split val --limit "$n" --engine lava \
      --compare "$out/best.pt" --json --no-progress | tail -n 1 > "$out/lava.json"
  echo "resnet$d reference: $(cat "$out/reference.json" | head -c 400)"
  echo "resnet$d lava: $(cat "$out/lava.json" | head -c 400)"
done
