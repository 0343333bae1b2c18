"""Simulation stage: run netx files in Lava's CPU simulator and a bit-exact reference
engine.  Not implemented yet (tracked by the export/simulation issue); no ``psplava sim``
command exists until it is."""
