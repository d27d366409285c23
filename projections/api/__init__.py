"""The read-model HTTP API, Mixpeek-shaped, under /v1: ``app.create_app`` builds it from
one router per family of operations (namespaces, resources, tasks, history, keys,
vectors, releases, diffs, health) over the services in ``services``.

Writes become commands on envbranch.commands and answer once the read model has
applied them (read your writes) or with the processor's reason for rejecting them.
Reads come from the read model only.
"""
