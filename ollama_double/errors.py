"""The Ollama API test double's errors: Ollama's own messages, and the handler's exceptions.

It must stay valid on Python 3.10 and 3.11 with only the standard library, without
``from __future__`` or relative imports outside its marked import block: ``archive.py``
concatenates the double's modules into the single-file stand-in ``bin/ollama``.
"""


ERR_QUEUE_FULL = "server busy, please try again.  maximum pending requests exceeded"
ERR_CONTEXT = "the input length exceeds the context length"
ERR_PULL_MANIFEST = "pull model manifest: file does not exist"


class _ClientGone(Exception):
    """The client closed the connection (or the double is stopping)."""


class _HTTPError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
