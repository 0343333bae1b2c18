"""Deployment stage: ``psplava deploy MODEL.net``.

- :mod:`psplava.deploy.plan`: the Loihi 2 resource plan (neurons, synapses, fan-in/out,
  synaptic memory, neurocores, chips) and, on real recordings, the energy and latency
  estimate (``--plan``);
- :mod:`psplava.deploy.loihi2`: the hardware target (``--target loihi2``, needs Intel's
  lava-loihi) and its simulator stand-in (``--target sim``).

Reads ``.net`` files only (through :mod:`psplava.netfile`) and runs them with
:mod:`psplava.sim`; it knows nothing of training.
"""
