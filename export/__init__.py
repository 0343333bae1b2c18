"""Export stage: fold PSP normalization into weights / dynamic thresholds, quantize for
Loihi and write netx HDF5.  Not implemented yet (tracked by the export issue); no
``psplava export`` command exists until it is."""
