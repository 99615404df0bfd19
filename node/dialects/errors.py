"""What the translators raise. The route turns each into the envelope of the client's dialect.

    DialectError
    ├── InvalidRequest     400  the request is malformed, or asks for what the other dialect
    │                           cannot carry (Anthropic and OpenAI: invalid_request_error)
    └── UnreadableAnswer   502  the upstream's answer cannot be translated
                                (Anthropic: api_error, OpenAI: upstream_error)

Messages never contain the request's content beyond a field name or a block type, so they are
safe to show to the client and to log.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DialectError(Exception):
    status: ClassVar[int] = 400
    anthropic_type: ClassVar[str] = "invalid_request_error"
    openai_type: ClassVar[str] = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def anthropic_envelope(self) -> dict[str, Any]:
        """Anthropic's error body: `{"type": "error", "error": {"type", "message"}}`."""
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    def openai_envelope(self) -> dict[str, Any]:
        """OpenAI's error body, as node.errors writes it."""
        error = {"message": self.message, "type": self.openai_type, "param": self.param}
        return {"error": error | {"code": None}}


class InvalidRequest(DialectError):
    """The client's request is malformed, or cannot be carried to the other dialect."""


class UnreadableAnswer(DialectError):
    """The upstream answered something the client's dialect cannot express."""

    status = 502
    anthropic_type = "api_error"
    openai_type = "upstream_error"
