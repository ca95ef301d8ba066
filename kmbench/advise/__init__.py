"""Which backend to use: ``auto`` (the choice inside ``kmbench.fit``), rankings from recorded results through
per-backend cost models, short trials, the shapes to record for the models, and several machines side by side."""
