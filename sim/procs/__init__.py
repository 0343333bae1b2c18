"""Lava Processes and fixed-point ProcessModels for psplava's SRM layers, and the
windowed model of Lava's stock LIF process.

Kept in their own package with nothing but processes and models: Lava imports every
``.py`` file in a Process's folder while looking for its models (docs/design.md, "netx and Lava").

**Windows.**  The Lava engine builds a network once and streams samples through it, one
window of ``window`` steps per sample.  At the first step of every window
(``(time_step - 1) % window == 0``, Lava counts steps from 1) each neuron model zeroes its
state and, when its input comes through a synapse, ignores that step's input: Lava's
Dense/Conv send at step t what they received at t - 1, so that input belongs to the
previous sample, and a freshly built network receives 0 there.  The result is bit for bit
a fresh network per sample (tested against stock netx built per sample).
"""
