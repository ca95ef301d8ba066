"""The core every backend and every harness layer builds on; it imports nothing above it.

``errors`` (what can go wrong), ``registry`` (the backends of every family, as data),
``backend`` (the family-neutral backend base), ``engine`` (the one stopwatch),
``kmeans`` (the K-Means fit on a named backend), ``result`` (result types),
``validation``, ``seeding``, ``threads`` and ``dask_input`` (lazy-array plumbing).
"""
