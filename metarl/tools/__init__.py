"""Tools over trained learners: comparisons with baselines, sweeps, benchmarks, plots and the
pygame viewer (library functions; the command line is in :mod:`metarl.cli`)."""
