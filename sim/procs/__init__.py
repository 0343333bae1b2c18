"""Lava Processes and fixed-point ProcessModels for psplava's SRM layers.

Kept in their own package with nothing but processes and models: Lava imports every
``.py`` file in a Process's folder while looking for its models (docs/design.md, "netx and Lava").
"""
