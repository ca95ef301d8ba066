"""Which backend to use: ``auto`` (the choice inside ``kmbench.fit``), rankings from recorded results, short trials."""
