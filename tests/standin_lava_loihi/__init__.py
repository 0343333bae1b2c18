"""A stand-in for Intel's lava-loihi, injected by tests/test_deploy.py into ``sys.modules``
as ``lava.utils.loihi2_profiler`` (what ``lava.utils.loihi.is_installed()`` looks for) and
``lava.proc.embedded_io.spike`` (the host <-> chip spike adapters).  Its adapters pass
spikes through in the same step on the CPU, so ``Loihi2HwCfg`` runs the netx network with
Lava's CPU models: the test exercises psplava's hardware code path (detection, refusal
of microcode layers, graph, run configuration, readout) without a chip."""
