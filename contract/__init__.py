"""The wire contract shared by the server, the SDK and any client: HTTP request and
response bodies, command bodies and their envelope."""
