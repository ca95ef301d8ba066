"""What was measured, for people: figures and pages from recorded results."""
