"""``kmbench.check.contract.check_backend`` on registered names, a spec, and classes that break the contract."""
from __future__ import annotations

import numpy as np
import pytest

from impls.base import Fitted
from impls.identity import IdentityKMeans
from kmbench.check.contract import ContractFailure, check_backend


@pytest.mark.parametrize("backend", ["identity", "impls.broadcast:BroadcastKMeans", IdentityKMeans])
def test_a_correct_backend_passes(backend):
    outcome = check_backend(backend)
    assert outcome["declared facts"] == "ok"
    assert all(v == "ok" for k, v in outcome.items() if k.startswith("float64")), outcome


class OffByOne(IdentityKMeans):
    """Returns every label shifted: a backend that computes the wrong thing."""

    name = "off-by-one"

    def result(self):
        out = super().result()
        k = out.centers.shape[0]
        return Fitted(out.centers, (out.labels + 1) % k, out.inertia, out.n_iter, out.converged)


class BadFacts(IdentityKMeans):
    name = "bad-facts"
    dtypes = ("float16",)


def test_wrong_labels_fail_the_oracle_check():
    with pytest.raises(ContractFailure) as err:
        check_backend(OffByOne, dtypes=["float64"])
    assert "float64: agrees with the oracle" in err.value.failures
    assert "declared facts" not in err.value.failures


def test_bad_declarations_fail_the_facts_check():
    with pytest.raises(ContractFailure, match="dtypes should be a non-empty subset"):
        check_backend(BadFacts, dtypes=["float64"])


def test_unavailable_backend_is_reported_not_failed():
    class Missing(IdentityKMeans):
        name = "missing"
        requires = ("surely_not_installed_module_xyz",)

    outcome = check_backend(Missing)
    assert outcome["runs here"].startswith("skipped: surely_not_installed_module_xyz not installed")
    assert np.all([k in outcome for k in ("declared facts",)])
