"""What can go wrong before a backend runs; the messages say why and what to do."""
from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """The backend cannot run here, or not this case; the message says why and what to do."""


class DtypeChanged(UserWarning):
    """The backend computes in another dtype than the data's (e.g. faiss: float32 only).

    The result's ``dtype`` records what ran; pass ``dtype=`` to choose it and silence this.
    """


class UnknownBackend(ValueError, KeyError):
    """No backend of that name in the registry (and not a ``"module:Class"`` spec).

    A ValueError for callers that validate input, a KeyError for those that look names up.
    """

    __str__ = ValueError.__str__  # KeyError's would quote the message
