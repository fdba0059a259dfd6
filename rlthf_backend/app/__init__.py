"""The application layer: the one place where settings meet the adapters.

``project.open_project`` opens a project (Label Studio client, parsed config, registry, store,
engine and reward-model configs); the use cases run on it: ``training/`` (one training as named
stages, and its RQ job), ``prelabel``, ``export``, ``report``. ``settings`` maps the environment
onto the core's config dataclasses. The CLI and the HTTP server sit above this layer; nothing
below it reads settings or builds clients, stores or registries.
"""
