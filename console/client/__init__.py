"""The one operator client: `sync.Client` (blocking, for the CLI, scripts and tests) and
`aio.AsyncClient` (asyncio, for the TUI), over the same connect, codec and error handling.

The two live in separate modules so the CLI never pays for importing asyncio.
"""
