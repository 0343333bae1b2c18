"""Deployment stage: the Loihi 2 hardware target (needs Intel's lava-loihi).  Not
implemented yet; no ``psplava deploy`` command exists until it is."""
