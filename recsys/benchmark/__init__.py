"""Benchmarks as a product (``recsys benchmark SUITE.yaml``).

A suite (``configs/benchmarks/*.yaml``) is datasets × models. For every pair the model's
configuration is either fixed or chosen by an Optuna search on the VALID split only (the
tuning machinery of :mod:`recsys.tuning`, one trial budget, sampler and pruner for every
searched model); the chosen configuration is then trained again with each of the suite's
seeds, and the leaderboard compares those runs (:mod:`recsys.compare`: mean ± std over
seeds, paired tests over users against the suite's baseline model). Test metrics never take
part in any choice.

``suite`` reads and validates suite files, ``runner`` runs a suite (resumable: finished
trials and runs are never redone), ``leaderboard`` writes its tables and plots.
"""
