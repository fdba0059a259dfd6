"""The pure core: judges, reward models, curation and simulation.

Nothing under ``core`` imports Flask, RQ or Label Studio; it works on plain Python objects and
numpy arrays so it can be tested and benchmarked without any server.
"""
