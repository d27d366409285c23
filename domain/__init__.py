"""The envbranch domain model: one aggregate per module, and the rules that span them
(ID remapping in ``references``, evaluation metrics and gates in ``evaluation``).

Pure: nothing here talks to Kafka, HTTP, SQL or a vector store, and nothing here
imports the rest of the project. The application layer (``application/``) loads,
calls and saves these aggregates.
"""
