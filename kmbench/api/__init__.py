"""The public entry points: ``fit`` (with ``backend="auto"``) and the scikit-learn ``KMeans`` estimator."""
