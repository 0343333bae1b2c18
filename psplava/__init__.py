"""psplava: PSP-normalized spiking neural networks from training to Lava and Loihi 2.

Stages (each a subpackage mapped from a folder at the repository root; they import one way:
``train`` <- ``export``, and ``sim`` knows neither -- the ``.net`` file is its contract):

- :mod:`psplava.train`  -- SRM/CUBA SNNs with PSP normalization on lava-dl SLAYER
- :mod:`psplava.export` -- fold normalization, quantize, write netx HDF5
- :mod:`psplava.sim`    -- run netx files in Lava's CPU simulator and a reference engine
- :mod:`psplava.deploy` -- Loihi 2: the resource plan and energy estimate, the chip target
  when Intel's lava-loihi is present, NIR export

Shared core: :mod:`psplava.neurons` (one module per neuron type: file group, hardware
parameters, integer step), :mod:`psplava.loihi` (the chip's number formats and exact
synapses), :mod:`psplava.netfile` (the ``.net`` schema), :mod:`psplava.data` (datasets),
:mod:`psplava.errors`.  Glue above the stages: :mod:`psplava.cli.pipeline` (checkpoint vs file
comparisons, dataset simulation, the demo) and the command line :mod:`psplava.cli`.
"""

__version__ = "0.1.0"
