"""The shared request frontier: scrapy-redis's scheduler extended with leases,
batches, compact fingerprints, JSON serialisation and a cluster-wide page budget."""
