"""The read side: the read-model projector (a Faust agent), its tables, and the HTTP API."""
