"""psplava: PSP-normalized spiking neural networks from training to Lava and Loihi 2.

Stages (each a subpackage mapped from a folder at the repository root):

- :mod:`psplava.train`  -- SRM/CUBA SNNs with PSP normalization on lava-dl SLAYER
- :mod:`psplava.export` -- fold normalization, quantize, write netx HDF5
- :mod:`psplava.sim`    -- run netx files in Lava's CPU simulator
- :mod:`psplava.deploy` -- Loihi 2 hardware target

Shared pieces live here: :mod:`psplava.data` (datasets and spike encodings),
:mod:`psplava.errors` (user-facing errors) and :mod:`psplava.cli`.
"""

__version__ = "0.1.0"
