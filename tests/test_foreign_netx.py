"""Files lava-dl writes, run by both engines against stock netx built per sample.

The files are lava-dl's own (copied from its repository, BSD-3-Clause): ``tiny.net`` (its
netx tests: an input neuron in front of two 5x5 convs), ``oxford.net`` (its netx Oxford
tutorial: a dense-first CUBA net), ``pilotnet_lif.net`` (its netx tests: input neuron,
convs with asymmetric stride and padding, flatten, dense layers), plus one written here
with lava-dl's slayer blocks.  The oracle is lava-dl's ``netx.hdf5.Network`` run as its own
tests run it: a fresh network per sample, Lava's default process models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "lavadl"


def stock_netx(path: Path, x: np.ndarray, layer: int = -1) -> np.ndarray:
    """Output of block ``layer`` for ``x`` (input shape + (T,)) in stock netx, one fresh
    network; the
    input goes to the input neuron's ``a_in`` when the file has one (as lava-dl's tests),
    else to the network's input port."""
    from psplava.sim.lava_engine import import_lava_runtime

    import_lava_runtime()
    from lava.lib.dl import netx
    from lava.lib.dl.netx.blocks.process import Input
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc import io

    T = x.shape[-1]
    net = netx.hdf5.Network(net_config=str(path))
    src = io.source.RingBuffer(data=x.astype(np.int32))
    first = net.layers[0]
    src.s_out.connect(first.neuron.a_in if isinstance(first, Input) else net.inp)
    sink = io.sink.RingBuffer(shape=net.layers[layer].out.shape, buffer=T)
    net.layers[layer].out.connect(sink.a_in)
    try:
        net.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return sink.data.get().astype(bool)
    finally:
        net.stop()


def _inputs(path: Path, n: int, T: int, seed: int = 0, rate: float = 0.2) -> np.ndarray:
    from psplava.netfile import input_shape, read_netfile

    net = read_netfile(path)
    shape = input_shape(net)
    rng = np.random.default_rng(seed)
    if net.layers[0].type == "input" and net.layers[0].neuron:  # graded a_in
        return rng.integers(0, 48, size=(n, *shape, T)).astype(np.int32)
    return (rng.random((n, *shape, T)) < rate).astype(np.int32)


CASES = {"tiny": ("tiny.net", 12), "oxford": ("oxford.net", 40)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_both_engines_equal_stock_netx(name):
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    fname, T = CASES[name]
    path = DATA / fname
    xs = _inputs(path, 3, T)
    stock = np.stack([stock_netx(path, x) for x in xs])
    with LavaNetwork(path, T, record="all", chunk=2) as net:  # 2 chunks: reset + re-fill
        lava = net.run(xs)
    ref = [internal_to_lava(o) for o in run_fixed(read_netfile(path), lava_to_internal(xs))]
    assert stock.sum() > 0, "the test input must make the output layer spike"
    assert np.array_equal(lava[-1], stock)
    assert np.array_equal(ref[-1], stock)
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert np.array_equal(a, b), f"layer {i}"


def test_pilotnet_lif_asymmetric_strides():
    """Its output neuron never spikes (a read-out by voltage), so the last spiking layer
    (fc-2, 10 neurons) is compared, after 5 convs with asymmetric stride/padding."""
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    path = DATA / "pilotnet_lif.net"
    T = 12
    xs = _inputs(path, 2, T)
    stock = np.stack([stock_netx(path, x, layer=-2) for x in xs])
    with LavaNetwork(path, T, record="all") as net:
        lava = net.run(xs)
    ref = internal_to_lava(run_fixed(read_netfile(path), lava_to_internal(xs))[-2])
    assert stock.sum() > 0, "the test input must make the compared layer spike"
    assert np.array_equal(lava[-2], stock)
    assert np.array_equal(ref, stock)


def test_axonal_delays_run_in_lava_like_stock_netx(tmp_path):
    """A dense-first file with axonal delays, written by lava-dl's slayer blocks: the Lava
    engine rebuilds it per sample (delays keep messages in flight across a window reset),
    the reference engine delivers each delay's share later; both equal stock netx."""
    import h5py
    import torch

    from psplava.lavadl import slayer
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    torch.manual_seed(3)
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
    blocks = [slayer.block.cuba.Dense(params, 20, 16, weight_scale=4, delay=True),
              slayer.block.cuba.Dense(params, 16, 5, weight_scale=4)]
    with torch.no_grad():
        x = (torch.rand(1, 20, 5) < 0.2).float()
        for b in blocks:  # lava-dl learns the shapes (and resets delays) in a first pass
            x = b(x)
        blocks[0].delay.delay.data = torch.randint(0, 4, blocks[0].delay.delay.shape).float()
    path = tmp_path / "delay.net"
    with h5py.File(path, "w") as h:
        for i, b in enumerate(blocks):
            b.export_hdf5(h.create_group(f"layer/{i}"))
    assert set(read_netfile(path).layers[0].delay.tolist()) == {0, 1, 2, 3}
    xs = _inputs(path, 2, 25)
    stock = np.stack([stock_netx(path, x) for x in xs])
    with LavaNetwork(path, 25, record="last") as net:
        lava = net.run(xs)
    ref = internal_to_lava(run_fixed(read_netfile(path), lava_to_internal(xs))[-1])
    assert stock.sum() > 0
    assert np.array_equal(lava[-1], stock)
    assert np.array_equal(ref, stock)


def test_pilotnet_sdnn_equals_lava_dl_ground_truth():
    """lava-dl's PilotNet SDNN (sigma-delta neurons, graded messages) against the ground
    truth its own netx test checks (``gts/pilotnet_sdnn/output.npy``: one frame held for 9
    steps).  Streamed [frame, other input, frame]: the third sample must match too (state
    reset), and every layer's graded output agrees between the engines."""
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    path = DATA / "pilotnet_sdnn.net"
    frame = np.load(DATA / "pilotnet_sdnn_input.npy")
    gt = np.load(DATA / "pilotnet_sdnn_output.npy")
    x = np.repeat(frame, 9, axis=-1)
    other = np.random.default_rng(0).integers(-50, 60, size=x.shape)
    xs = np.stack([x, other, x]).astype(np.int32)
    with LavaNetwork(path, 9, record="all", chunk=2) as net:
        lava = net.run(xs)
    ref = [internal_to_lava(o) for o in run_fixed(read_netfile(path), lava_to_internal(xs))]
    for out in (lava[-1], ref[-1]):
        assert out.dtype == np.int64
        assert np.array_equal(out[0], gt) and np.array_equal(out[2], gt)
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert np.array_equal(a, b), f"layer {i}"
    assert np.abs(lava[3]).sum() > 0


def test_dense_without_neuron_like_stock_netx(tmp_path):
    """lava-dl's ``Affine`` block writes a dense layer without a neuron group; netx gives
    it a non-leaky integrator whose threshold (2**17 << 6 = 2**23) its 24-bit voltage can
    never exceed: a read-out that never spikes.  Both engines read and run such files and
    agree with stock netx (the layer before it spikes, itself never)."""
    import h5py
    import torch

    from psplava.lavadl import slayer
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    torch.manual_seed(4)
    params = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03}
    blocks = [slayer.block.cuba.Dense(params, 20, 16, weight_scale=4),
              slayer.block.cuba.Affine(params, 16, 4, weight_scale=4, dynamics=False)]
    with torch.no_grad():
        x = (torch.rand(1, 20, 5) < 0.2).float()
        for b in blocks:
            x = b(x)
    path = tmp_path / "affine.net"
    with h5py.File(path, "w") as h:
        for i, b in enumerate(blocks):
            b.export_hdf5(h.create_group(f"layer/{i}"))
    assert read_netfile(path).layers[1].neuron.implicit
    xs = _inputs(path, 2, 60, rate=0.6)
    stock = [np.stack([stock_netx(path, x, layer=i) for x in xs]) for i in (0, 1)]
    with LavaNetwork(path, 60, record="all") as net:
        lava = net.run(xs)
    ref = [internal_to_lava(o) for o in run_fixed(read_netfile(path), lava_to_internal(xs))]
    assert stock[0].sum() > 0 and stock[1].sum() == 0
    for i in (0, 1):
        assert np.array_equal(lava[i], stock[i]) and np.array_equal(ref[i], stock[i])


def test_streaming_keeps_alignment_across_partial_chunks():
    """Several ``run`` calls on one built network, with chunks that do not divide them
    (3 + 1 + 1 samples through chunks of 2: the second call starts mid-buffer): each
    sample equals the reference engine."""
    from psplava.netfile import read_netfile
    from psplava.sim.fixed import internal_to_lava, lava_to_internal, run_fixed
    from psplava.sim.lava_engine import LavaNetwork

    path = DATA / "oxford.net"
    xs = _inputs(path, 5, 30, seed=5)
    ref = [internal_to_lava(o) for o in run_fixed(read_netfile(path), lava_to_internal(xs))]
    with LavaNetwork(path, 30, record="all", chunk=2) as net:
        lava = [np.concatenate(p) for p in zip(net.run(xs[:3]), net.run(xs[3:4]),
                                                net.run(xs[4:]))]
    assert ref[-1].sum() > 0
    for i, (a, b) in enumerate(zip(lava, ref)):
        assert np.array_equal(a, b), f"layer {i}"
