"""A harness that runs the real Claude Code client (client/, `make client`) on loopback.

`fake_anthropic` plays the Anthropic Messages API from a script and keeps a ledger of what it billed,
`otlp_receiver` records what the client exports over OTLP/HTTP, `claude_client.run_session` runs one
`claude -p` session against both, and `record` writes the fixtures under tests/fixtures/claude-code/.
"""
