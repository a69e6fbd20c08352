"""commands of the baike project."""
