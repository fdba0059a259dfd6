"""The model registry: one folder per project, one immutable version per training.

- ``versions``: publishing, listing and pruning versions atomically (:class:`ModelRegistry`).
- ``records``: the typed records a training writes into a version and every reader reads back
  (round record, carried state, judgments, margins, the round log).
"""
