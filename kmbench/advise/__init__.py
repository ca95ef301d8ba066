"""Which backend for a shape on a machine: the cost model, the shape design."""
