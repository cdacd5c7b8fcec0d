"""The Anthropic side: the Messages API as Claude Code speaks it. Request models and their
checks (`anthropic.py`, `blocks.py`, `nesting.py`), the API key (`auth.py`), the one state
machine that turns an engine's chunks into Anthropic events (`streaming.py`) and their framing
as server-sent events (`sse.py`)."""
