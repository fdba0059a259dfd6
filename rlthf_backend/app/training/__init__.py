"""One training of a project: ``stages`` (read, judge, plan, fit, publish, reorder, settle), run by
``pipeline``; ``rounds`` holds the pure bookkeeping between them; ``job`` is the RQ job around it."""
