"""The envbranch domain: aggregates, commands, clone and ID-remap rules.

Pure: nothing here talks to Kafka, HTTP or a vector store. The only I/O is the
event store, reached through the ``eventsourcing`` application in
``domain.application``.
"""
