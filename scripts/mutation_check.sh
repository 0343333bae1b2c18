#!/usr/bin/env bash
# Apply each mutation of issue 7 to the source, run the Loihi-exactness tests, restore.
# Every mutation must make the tests fail ("KILLED"); a "SURVIVED" line is a defect.
#   bash scripts/mutation_check.sh
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
killed=0; failed=0
run() {  # name file old new [test file]
  local name="$1" file="$2" old="$3" new="$4" tests="${5:-tests/test_loihi_exact.py}"
  cp "$file" "$file.orig"
  if ! $PY - "$file" "$old" "$new" <<'PYEOF'
import sys
p, old, new = sys.argv[1:]
s = open(p).read()
if old not in s:
    sys.exit(f"mutation target not found in {p}: {old!r}")
open(p, "w").write(s.replace(old, new, 1))
PYEOF
  then   # a moved target is a defect of this list, never a kill
    echo "TARGET MISSING: $name"
    mv "$file.orig" "$file"
    failed=$((failed + 1))
    return
  fi
  if $PY -m pytest -q -x -p no:cacheprovider "$tests" >/dev/null 2>&1; then
    echo "SURVIVED: $name"
    failed=$((failed + 1))
  else
    echo "KILLED:   $name"
    killed=$((killed + 1))
  fi
  mv "$file.orig" "$file"
}
run "exporter halves SRM weights" export/exporter.py \
  'weight, wf = _int(hw.weight), hw.weight_float.numpy()' \
  'weight, wf = _int(hw.weight / (2 if type(hw.neuron).__name__ == "SRMHardware" else 1)), hw.weight_float.numpy()'
run "refractory amplitude -theta instead of -2 theta" psplava/neurons/srm.py \
  'return -2 * self.theta_int' 'return -1 * self.theta_int'
run "truncating instead of rounding a decay" psplava/loihi.py \
  'return torch.sign(p) * ((p.abs() + (DECAY_UNITY >> 1)) >> DECAY_SHIFT)' \
  'return torch.sign(p) * (p.abs() >> DECAY_SHIFT)'
run "dynamic threshold uses m2 of the previous step" psplava/loihi.py \
  '        return self.m2_from_sums(sums, steps, n, tau_s)' \
  '        m2 = self.m2_from_sums(sums, steps, n, tau_s)
        return torch.cat([torch.zeros_like(m2[:1]), m2[:-1]])'
# residual networks (issue 9): each guarded by tests/test_residual.py
run "exporter drops the skip inputs" export/exporter.py \
  'entry.skips = [Skip(src, SkipMode.MEMBRANE)]' 'entry.skips = []' tests/test_residual.py
run "reference engine ignores membrane skips" sim/fixed.py \
  'z = z + zs[src]' 'z = z' tests/test_residual.py
run "Lava ignores membrane skips" sim/lava_engine.py \
  'src.z_out.connect(neuron.a_in)' 'pass' tests/test_residual.py
run "shortcut conv without the PSP-BN scale" train/deployed.py \
  'w = w * torch.rsqrt(first_pre.running_m2.double() + first_pre.lam).view(1, -1, 1, 1)' \
  'w = w' tests/test_residual.py
# SRM -> CUBA conversion (issue 10): guarded by tests/test_convert.py
run "conversion gain without the decay factor q" train/convert.py \
  'return (theta_cuba / theta_srm) * (math.e / tau_s) * q' \
  'return (theta_cuba / theta_srm) * (math.e / tau_s)' tests/test_convert.py
run "conversion ignores the PSP-BN calibration" train/convert.py \
  'w = w * ratio.view((1, -1, 1, 1) if a.spec.kind == "conv" else (1, -1))' 'pass' \
  tests/test_convert.py
# NIR export (issue 10): guarded by tests/test_nir.py
run "NIR current time constant off by one step" export/nir_export.py \
  'tau_syn = DT * 4096.0 / hw.i_decay' 'tau_syn = DT * 4096.0 / (hw.i_decay + 8)' \
  tests/test_nir.py
# SRM GPU kernels (issue 18): guarded by tests/test_kernels_gpu.py (Triton's interpreter)
run "GPU kernel drops the refractory decay (EXP)" train/kernels_triton.py \
  '                y = d * (y + s)' '                y = y + s' tests/test_kernels_gpu.py
run "GPU kernel drops a decay of the ALPHA refractory" train/kernels_triton.py \
  '                y = d * (y + x + s)' '                y = y + x + s' tests/test_kernels_gpu.py
run "GPU PSP kernel drops a decay step" train/kernels_triton.py \
  '            xn = q * (x + sp)' '            xn = x + sp' tests/test_kernels_gpu.py
# activation checkpointing (issue 18): guarded by tests/test_distributed.py
run "checkpointed recompute tracks PSP-BN statistics again" train/norm.py \
  '        if _FROZEN.get():
            return' '        pass' tests/test_distributed.py
# the CPU integer kernels (issue 18): guarded by tests/test_loihi_kernels.py
run "numba decay truncates instead of rounding" psplava/loihi_kernels.py \
  '        return (p + 2048) >> 12' '        return p >> 12' tests/test_loihi_kernels.py
run "numba halves recombined with 255" psplava/loihi_kernels.py \
  '* 256.0 + np.float64' '* 255.0 + np.float64' tests/test_loihi_kernels.py
run "numba SRM spike strictly above threshold" psplava/loihi_kernels.py \
  'spike = np.int64(z[t, n, f]) + r >= theta' 'spike = np.int64(z[t, n, f]) + r > theta' \
  tests/test_loihi_kernels.py
# causal PSP-LN's prior and the norm warm start (issue 21): tests/test_causal_prior.py
run "dynamic threshold drops its prior" psplava/loihi.py \
  'return ((c * c) * (q / float(n)) + n0 * float(self.prior)) /' \
  'return ((c * c) * (q / float(n)) + 0.0 * float(self.prior)) /' tests/test_causal_prior.py
run "norm warm start without the folded PSP scale" train/convert.py \
  'b.weight.copy_((a.weight.detach().double() * gain).to(b.weight))' \
  'b.weight.copy_(a.weight.detach().to(b.weight))' tests/test_causal_prior.py
# issue 19's list: each value of the integer model, guarded by the tests named
run "no 24-bit wrap of the conv output" psplava/loihi.py \
  '    return torch.remainder(z + base // 2, base) - base // 2' '    return z' \
  tests/test_loihi_kernels.py
run "CUBA decay rounds instead of truncating" psplava/loihi.py \
  '        return torch.trunc(v * ((DECAY_UNITY - int(decay)) / DECAY_UNITY))' \
  '        return torch.round(v * ((DECAY_UNITY - int(decay)) / DECAY_UNITY))' tests/test_loihi_kernels.py
run "SRM spike strictly above threshold (torch step)" psplava/neurons/srm.py \
  '            s = z.to(torch.int64) + r >= self.theta' \
  '            s = z.to(torch.int64) + r > self.theta' tests/test_loihi_kernels.py
run "PSP message without the +128 rounding" psplava/neurons/srm.py \
  '    return (y + (1 << (PSP_MSG_SHIFT - 1))) >> PSP_MSG_SHIFT' '    return y >> PSP_MSG_SHIFT' \
  tests/test_loihi_exact.py
run "dense weights in (H, W, C) instead of netx's (C, H, W) order" export/exporter.py \
  '    return np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)' \
  '    return np.arange(h * w * c)' tests/test_loihi_exact.py
run "weights rounded to all integers, not even ones" psplava/loihi.py \
  'WEIGHT_MIN, WEIGHT_MAX, WEIGHT_STEP = -256, 254, 2' 'WEIGHT_MIN, WEIGHT_MAX, WEIGHT_STEP = -256, 254, 1' \
  tests/test_export_netfile.py
run "main-path PSP-BN scale not folded" train/deployed.py \
  '                w = w * (s.view(1, -1, 1, 1) if conv else s.view(1, -1))' '                pass' \
  tests/test_export_fold.py
run "Lava SRM layer keeps its state across samples" sim/procs/models.py \
  '            self.state = self.model.state(self.shape, self.hw)' '            pass' tests/test_causal_prior.py
run "PSP-LN backward without the projection term" train/norm.py \
  '        grad = r * (g - a_hat * (g * a_hat).mean(dim=ctx.dims, keepdim=True))' \
  '        grad = r * g' tests/test_train_neuron.py
# NIR import (issue 20): guarded by tests/test_nir_import.py
run "IF/CUBA reset by subtraction instead of to zero (engines)" psplava/neurons/cuba.py \
  '        self.v = v.masked_fill(s, 0.0)' '        self.v = torch.where(s, v - self.vth, v)' \
  tests/test_nir_import.py
run "NIR float reference resets by subtraction" export/nir_float.py \
  '    st.v = torch.where(z, _t(node.v_reset).expand_as(st.v), st.v)' \
  '    st.v = torch.where(z, st.v - _t(node.v_threshold), st.v)' tests/test_nir_import.py
run "NIR import: dt off by a factor of 10 in the neurons" export/nir_import.py \
  '    c = neuron_constants(seg.neuron, node, seg.out_shape, dt)' \
  '    c = neuron_constants(seg.neuron, node, seg.out_shape, dt / 10)' tests/test_nir_import.py
run "NIR import: conv kernel transposed (H <-> W)" export/nir_import.py \
  '    weight = resp.reshape(c, kh, kw, oc).permute(3, 0, 1, 2).contiguous()' \
  '    weight = resp.reshape(c, kh, kw, oc).permute(3, 0, 2, 1).contiguous()' tests/test_nir_import.py
run "event counts binarized in the reference engine" sim/fixed.py \
  '    elif x.numel() and (x.min() < 0 or x.max() > 1):' '    elif False:' tests/test_nir_import.py
echo "$killed killed, $failed survived or missing"
[ "$failed" -eq 0 ]
