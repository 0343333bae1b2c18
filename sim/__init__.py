"""Simulation stage: run ``.net`` files in Lava's CPU simulator (fixed_pt) and in a
batched fixed-point reference engine that is bit-exact with it.

Supported so far: CUBA networks (stock netx, ours or lava-dl's).  SRM neurons and the
dynamic threshold of causal PSP-LN need custom Lava processes (not implemented yet).
"""
