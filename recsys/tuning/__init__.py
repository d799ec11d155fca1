"""Hyper-parameter tuning with Optuna from a study file (``recsys tune``).

``spec`` reads and validates study files, ``space`` turns dotted config paths into
distributions, ``storage`` holds studies and recovers trials of dead workers, ``worker``
runs trials, ``outputs`` writes best.yaml / trials.csv / plots, ``runner`` ties them
together (:func:`recsys.tuning.runner.run_study`); the ``recsys tune`` command is in
:mod:`recsys.cli.tune`. Import from the submodules; this package module stays light so the
command line starts fast.
"""
