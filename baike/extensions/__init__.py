"""extensions of the baike project."""
