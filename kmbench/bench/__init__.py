"""How fast is it: sweeps (one process per case), the machine description, the record store, benchmark profiles."""
