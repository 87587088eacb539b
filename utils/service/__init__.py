"""Service plumbing: settings, errors, files and locks, caches, metrics, jobs, the model and annotation
stores. Imports nothing else of `utils`: every other package may import it."""
