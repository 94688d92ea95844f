"""Simulated power meters: plausible physics, injected faults and labelled datasets.

:mod:`.physics` holds :class:`~gridedge.simulator.physics.MeterSimulator`, :mod:`.faults` the
fault plans and their ground truth, and :mod:`.dataset` writes labelled CSV files for training
and scoring anomaly detectors.
"""
