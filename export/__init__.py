"""Export stage: fold the normalization into weights (PSP-BN, BN, tdBN) and dynamic
thresholds (causal PSP-LN, Eq. 18), quantize for Loihi and write netx HDF5 (``.net``).

Lava simulation of the exported files (``psplava sim``) is not implemented yet.
"""
