"""spiders of the baike project."""
