"""Hierarchical (agglomerative) clustering backends behind one interface
(``impls.linkage.base.LinkageBackend``), one small module each."""
