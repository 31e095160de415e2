"""Detection: departures from the learned baseline, protocol violations, operational events, scans.

The package keeps its modules separate (``engine``, ``rules``, ``activity``,
``model``) and re-exports nothing, so the baseline can use the activity
classifier without importing the engine that itself depends on the baseline.
"""
